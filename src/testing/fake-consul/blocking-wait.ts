import type { Random } from "../../core/random.ts";

/** Consul's `max_query_time`: the longest a blocking query waits. @internal */
export const MAX_WAIT_MS = 10 * 60_000;
/** Consul's `default_query_time`: the wait of a blocking query that gives none (or `wait=0s`). @internal */
export const DEFAULT_WAIT_MS = 5 * 60_000;

/**
 * How long a blocking query waits, as Consul's `RPCQueryTimeout` computes it: the asked wait, or the
 * default when none or zero is asked, capped at the maximum, plus a random extra of up to a
 * sixteenth of it (`lib.RandomStagger(wait / 16)`) so that a fleet's queries do not all end at once.
 *
 * @param askedMs - the `?wait` parameter in ms, undefined when not given
 * @param random - the source of the jitter
 * @internal
 */
export function blockingWaitMs(askedMs: number | undefined, random: Random): number {
  const wait = askedMs === undefined || askedMs <= 0 ? DEFAULT_WAIT_MS : Math.min(askedMs, MAX_WAIT_MS);
  return wait + Math.floor(random.next() * (wait / 16));
}
