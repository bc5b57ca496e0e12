/**
 * The source of randomness. Pass a seeded one (`createSeededRandom` from `proxyless/testing`) to make
 * balancers, splits and jitter reproducible.
 */
export interface Random {
  /** A number in [0, 1). */
  next(): number;
}

/** `Math.random`, the default. */
export const systemRandom: Random = Object.freeze({ next: () => Math.random() });

/**
 * A fast seeded generator (sfc32, seeded through splitmix32). Same seed, same sequence, on every platform.
 *
 * @param seed - any 32-bit integer
 */
export function createSeededRandom(seed: number): Random {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  // State in a typed array: plain variables above 2^30 would box a heap number on every draw.
  const state = Uint32Array.of(splitmix(), splitmix(), splitmix(), splitmix());
  return {
    next(): number {
      const a = state[0] ?? 0;
      const b = state[1] ?? 0;
      const c = state[2] ?? 0;
      const d = state[3] ?? 0;
      const t = (((a + b) >>> 0) + d) >>> 0;
      state[3] = d + 1;
      state[0] = b ^ (b >>> 9);
      state[1] = c + (c << 3);
      const rotated = (c << 21) | (c >>> 11);
      state[2] = rotated + t;
      return t / 4294967296;
    },
  };
}

/** An integer in [0, n). @internal */
export function randomIndex(random: Random, n: number): number {
  return Math.floor(random.next() * n);
}
