/**
 * Reads an integer setting from the environment.
 *
 * @param name - the variable, such as `BENCH_ROUNDS`
 * @param fallback - the value when it is unset or empty
 * @param min - the least value accepted
 * @throws Error naming the variable when the value is not an integer >= min
 */
export function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return value;
}
