// The quantities accounting measures, per domain and per sponsor, and the
// arithmetic on them. Cumulative: each is what was used over a time range.

export const USAGE_KEYS = [
  'cpuSeconds',
  'memTargetMiBSeconds',
  'memRssMiBSeconds',
  'diskReadBytes',
  'diskWriteBytes',
  'diskReadOps',
  'diskWriteOps',
  'netRxBytes',
  'netTxBytes',
  'netRxPackets',
  'netTxPackets',
] as const;

export type UsageKey = (typeof USAGE_KEYS)[number];
export type Usage = Record<UsageKey, number>;

export function isUsageKey(k: string): k is UsageKey {
  return (USAGE_KEYS as readonly string[]).includes(k);
}

export function zeroUsage(): Usage {
  return Object.fromEntries(USAGE_KEYS.map((k) => [k, 0])) as Usage;
}

export function addUsage(into: Usage, more: Partial<Usage>): Usage {
  for (const k of USAGE_KEYS) into[k] += more[k] ?? 0;
  return into;
}
