// Errors found after parsing (a disk image in use by another domain, a volume
// refused) carry no line: the daemon checks the typed config, which has no
// source positions any more. They name the file, so the line that names it is
// found here, in the text that was sent.

/** The 1-based line of `text` an error message points at through a quoted path, if any. */
export function lineOfNamedFile(message: string, text: string): number | undefined {
  const m = /(?:disk image|image|file|volume) '([^']+)'/.exec(message);
  const name = m?.[1];
  if (!name) return undefined;
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(name));
  return i >= 0 ? i + 1 : undefined;
}
