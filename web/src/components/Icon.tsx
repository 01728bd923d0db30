// Small stroke icons for the action buttons (fonts lack some symbols, e.g. ⏻).

const PATHS = {
  pause: 'M6 4v12M14 4v12',
  play: 'M6 4l10 6-10 6z',
  power: 'M10 2v7M5.5 5.2a7 7 0 1 0 9 0',
  reboot: 'M16 10a6 6 0 1 1-2-4.5M16 3v4h-4',
  destroy: 'M5 5l10 10M15 5L5 15',
} as const;

export function Icon({ name }: { name: keyof typeof PATHS }) {
  return (
    <svg class="icon" viewBox="0 0 20 20" width="14" height="14" aria-hidden="true">
      <path
        d={PATHS[name]}
        fill={name === 'play' ? 'currentColor' : 'none'}
        stroke="currentColor"
        stroke-width="2"
        stroke-linecap="round"
        stroke-linejoin="round"
      />
    </svg>
  );
}
