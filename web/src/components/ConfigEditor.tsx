// A plain-text xl.cfg editor with line numbers that marks the line an error
// points at (the API returns {file, line, column} for config errors).

interface Props {
  value: string;
  onInput: (text: string) => void;
  errorLine?: number;
  readOnly?: boolean;
  label: string;
}

export function ConfigEditor({ value, onInput, errorLine, readOnly, label }: Props) {
  const lines = value.split('\n');
  const widest = lines.reduce((m, l) => Math.max(m, l.length), 0);
  return (
    <div class={`editor${readOnly ? ' editor-ro' : ''}`} data-error-line={errorLine ?? ''}>
      <div class="gutter" aria-hidden="true">
        {lines.map((_, i) => (
          <div key={i} class={i + 1 === errorLine ? 'gl err' : 'gl'}>
            {i + 1}
          </div>
        ))}
      </div>
      <div class="editor-body">
        <div class="backdrop" aria-hidden="true">
          {lines.map((l, i) => (
            <div key={i} class={i + 1 === errorLine ? 'bl err' : 'bl'}>
              {l || ' '}
            </div>
          ))}
        </div>
        <textarea
          aria-label={label}
          spellcheck={false}
          autocapitalize="off"
          autocomplete="off"
          wrap="off"
          readOnly={readOnly}
          rows={lines.length}
          // Border-box: the padding is inside this width, so the editor is exactly as wide as its text.
          style={{ minWidth: `calc(${widest + 1}ch + 24px)` }}
          value={value}
          onInput={(e) => onInput((e.currentTarget as HTMLTextAreaElement).value)}
        />
      </div>
    </div>
  );
}
