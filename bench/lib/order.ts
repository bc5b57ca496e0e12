/** The order of every round, and of the warm-up before them. */
export interface Schedule {
  /** The order of the warm-up: the last round's, so the warm-up leads into round 1 as the cycle does. */
  readonly warmup: readonly number[];
  /** One permutation of 0..n-1 per round; round `r` uses `rounds[r % rounds.length]`. */
  readonly rounds: readonly (readonly number[])[];
}

/** Row `a` of a Williams Latin square for even `n`: 0, 1, n-1, 2, n-2, ... shifted by `a`. */
function williamsRow(n: number, a: number): number[] {
  const row = [0];
  for (let lo = 1, hi = n - 1; row.length < n; ) {
    row.push(lo++);
    if (row.length < n) row.push(hi--);
  }
  return row.map((v) => (v + a) % n);
}

/** An Eulerian circuit (Hierholzer) of a directed graph on 0..n-1 whose nodes have in = out degree. */
function eulerCircuit(n: number, edge: (a: number, b: number) => boolean): number[] {
  const out = Array.from({ length: n }, (_, a) => Array.from({ length: n }, (_, b) => b).filter((b) => edge(a, b)));
  const stack = [0];
  const circuit: number[] = [];
  while (stack.length > 0) {
    const next = out[stack[stack.length - 1]!]!.pop();
    if (next === undefined) circuit.push(stack.pop()!);
    else stack.push(next);
  }
  return circuit.reverse().slice(0, -1);
}

/**
 * The round orders for `n` variants (n even), `n * (n - 1)` rounds in all. Every variant runs in every
 * position equally often, and, counting the step from one round into the next, right after every other
 * variant equally often. The second matters: switching between undici's `fetch` and `request` code paths
 * deoptimizes shared undici functions, so the run after a switch is slower, and a plain rotation would
 * always put the same variant after the same neighbour.
 *
 * The rounds are the rows of a Williams Latin square (balanced within rounds), each used `n - 1` times,
 * chained by an Eulerian circuit so that the steps between rounds cover every ordered pair once.
 *
 * @param n - the number of variants, even
 */
export function balancedSchedule(n: number): Schedule {
  if (n < 2 || n % 2 !== 0) throw new Error(`a balanced schedule needs an even number of variants, got ${n}`);
  const rows = Array.from({ length: n }, (_, a) => williamsRow(n, a));
  const last = (a: number): number => rows[a]![n - 1]!;
  const order = eulerCircuit(n, (a, b) => last(a) !== rows[b]![0]!);
  const rounds = order.map((a) => rows[a]!);
  return { warmup: rounds[rounds.length - 1]!, rounds };
}
