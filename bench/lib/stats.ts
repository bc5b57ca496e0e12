/**
 * The median of some numbers (the mean of the middle two for an even count).
 *
 * @param values - at least one number
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The q-quantile of sorted samples, nearest rank.
 *
 * @param sorted - samples in ascending order, at least one
 * @param q - between 0 and 1
 */
export function quantileSorted(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) throw new Error("quantile of no values");
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Rounds to a number of decimals, for reports.
 *
 * @param value - any number
 * @param decimals - digits after the point
 */
export function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
