// How numbers are shown: xl's uptime layout, MiB, rates and percentages.

export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const two = (n: number) => String(n).padStart(2, '0');
  const hms = `${two(Math.floor((s % 86400) / 3600))}:${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}`;
  return days > 0 ? `${days} day${days > 1 ? 's' : ''}, ${hms}` : hms;
}

export function formatMiB(mib: number | null | undefined): string {
  if (mib === null || mib === undefined) return '–';
  return mib >= 1024 ? `${(mib / 1024).toFixed(mib % 1024 === 0 ? 0 : 1)} GiB` : `${Math.round(mib)} MiB`;
}

export function formatRate(bps: number | null | undefined): string {
  if (bps === null || bps === undefined) return '–';
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let v = bps;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatPct(p: number | null | undefined): string {
  return p === null || p === undefined ? '–' : `${p.toFixed(1)} %`;
}
