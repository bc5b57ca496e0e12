/** How the targets of a case are weighted. */
export type WeightMode = "equal" | "unequal";

/** The picker's random source: `createSeededRandom(1)`, or `systemRandom` (`Math.random`, the mesh's default). */
export type RandomMode = "seeded" | "system";

/** One measured configuration: a policy over a number of endpoints. */
export interface PickCase {
  /** The key prefix in the summary, such as `least_request` or `weighted_round_robin_equal`. */
  readonly key: string;
  /** The built-in balancer's name. */
  readonly policy: string;
  /** How many targets the picker chooses among. */
  readonly endpoints: number;
  /** Equal weights (1) or seeded random integers 1 to 10. */
  readonly weights: WeightMode;
  /** Whether each pick gets a precomputed random 32-bit hash (ring_hash, maglev) or none. */
  readonly hashed: boolean;
  /** The random source in the picker's env. */
  readonly random: RandomMode;
  /** Part of the required matrix (every policy at 10 and 10,000), rather than an extra line. */
  readonly main: boolean;
}

/** The built-in policies, in table order. */
export const POLICIES = [
  "round_robin",
  "weighted_round_robin",
  "least_request",
  "peak_ewma",
  "random",
  "ring_hash",
  "maglev",
] as const;

/** The endpoint counts of the required matrix. */
export const SIZES = [10, 10_000] as const;

const HASHED: ReadonlySet<string> = new Set(["ring_hash", "maglev"]);

function pickCase(policy: string, endpoints: number, weights: WeightMode, main: boolean, suffix = "", random: RandomMode = "seeded"): PickCase {
  return { key: policy + suffix, policy, endpoints, weights, hashed: HASHED.has(policy), random, main };
}

/**
 * Every case, in run order: each policy at each size (weighted_round_robin with unequal weights, so its
 * earliest-deadline-first path is measured; the others with equal weights, as most registries report),
 * then the other code paths as extra lines: weighted_round_robin with equal weights (its round-robin
 * fast path), least_request with unequal weights (weighted least request), the weighted builds of
 * random, ring_hash and maglev at 10,000 endpoints, and the policies that draw random numbers per pick
 * with `systemRandom`, the mesh's default, at 10,000 endpoints.
 */
export function allCases(): PickCase[] {
  const cases: PickCase[] = [];
  for (const policy of POLICIES) {
    for (const size of SIZES) cases.push(pickCase(policy, size, policy === "weighted_round_robin" ? "unequal" : "equal", true));
  }
  for (const size of SIZES) cases.push(pickCase("weighted_round_robin", size, "equal", false, "_equal"));
  for (const size of SIZES) cases.push(pickCase("least_request", size, "unequal", false, "_weighted"));
  for (const policy of ["random", "ring_hash", "maglev"]) cases.push(pickCase(policy, 10_000, "unequal", false, "_weighted"));
  for (const policy of ["least_request", "peak_ewma", "random"]) cases.push(pickCase(policy, 10_000, "equal", false, "_system_random", "system"));
  return cases;
}

/**
 * The cases selected by `BENCH_PICK_ONLY`: a comma-separated list of `key` or `key:endpoints`
 * (`peak_ewma:10000,maglev`); every case when it is empty.
 *
 * @param cases - every case
 * @param only - the filter, empty for none
 * @throws Error when the filter matches nothing
 */
export function selectCases(cases: readonly PickCase[], only: string): PickCase[] {
  const wanted = only.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (wanted.length === 0) return [...cases];
  const selected = cases.filter((c) => wanted.some((w) => w === c.key || w === `${c.key}:${c.endpoints}`));
  if (selected.length === 0) throw new Error(`BENCH_PICK_ONLY=${only} matches no case`);
  return selected;
}
