// IPv6 addresses as the audit compares them: 32 lower-case hex digits, the form
// peek.ts reads from frames. Parsing text here (ip= from the daemon) rather than
// comparing strings, so `2001:db8::1` and `2001:0db8:0:0:0:0:0:1` are one address.

/** `s` (IPv6 text, optionally /prefix, no zone) as 32 hex digits; undefined if it is not IPv6. */
export function ipv6Hex(s: string): string | undefined {
  const text = s.split('/')[0] as string;
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.split('::').length > 2) return undefined;
  let groups: string[];
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  let t = text;
  if (dotted) {
    const q = dotted.slice(1).map(Number);
    if (q.some((x) => x > 255)) return undefined;
    t = `${text.slice(0, dotted.index)}${((q[0] as number) * 256 + (q[1] as number)).toString(16)}:${((q[2] as number) * 256 + (q[3] as number)).toString(16)}`;
  }
  if (t.includes('::')) {
    const [h = '', tl = ''] = t.split('::');
    const hs = h ? h.split(':') : [];
    const ts = tl ? tl.split(':') : [];
    if (hs.length + ts.length > 7) return undefined;
    groups = [...hs, ...new Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  } else groups = t.split(':');
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.toLowerCase().padStart(4, '0')).join('');
}

/** The modified EUI-64 link-local address (fe80::/64) of a MAC, as Linux forms it by default. */
export function eui64LinkLocal(mac: number): string {
  const b = [
    Math.floor(mac / 2 ** 40) & 0xff,
    Math.floor(mac / 2 ** 32) & 0xff,
    (mac >>> 24) & 0xff,
    (mac >>> 16) & 0xff,
    (mac >>> 8) & 0xff,
    mac & 0xff,
  ];
  const iid = [(b[0] as number) ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]] as number[];
  return `fe80000000000000${iid.map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/** Link-local unicast, fe80::/10. */
export function isLinkLocal6(hex: string): boolean {
  return hex.startsWith('fe8') || hex.startsWith('fe9') || hex.startsWith('fea') || hex.startsWith('feb');
}

export const UNSPECIFIED6 = '0'.repeat(32);

/** 32 hex digits back to text (no :: shortening beyond dropping leading zeros): for events. */
export function ipv6Text(hex: string): string {
  const g = [];
  for (let i = 0; i < 32; i += 4) g.push(Number.parseInt(hex.slice(i, i + 4), 16).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}
