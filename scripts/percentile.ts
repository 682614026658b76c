// Nearest-rank percentile, for the figures the benchmark and the chaos audit report.

/** The value at or below which a fraction `p` (0 to 1) of `values` lie; undefined for no values. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}
