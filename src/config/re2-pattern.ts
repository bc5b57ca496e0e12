import { RE2JS } from "re2js";
import { MeshError } from "../core/errors.ts";

/**
 * A regular expression in RE2's syntax (Consul's and Envoy's, Go's `regexp`), compiled once. RE2 runs
 * in time linear in the value's length, whatever the pattern: no backtracking, so no crafted value can
 * stall the event loop. @internal
 */
export interface Re2Pattern {
  /** The pattern as written. */
  readonly source: string;
  /**
   * Whether the value matches: the whole value (RE2's full match, as Envoy's `safe_regex`), or with
   * the `search` option some part of it (Go's `MatchString`).
   */
  test(value: string): boolean;
}

/** How a pattern compiles. @internal */
export interface Re2Options {
  /** Letters match in either case (Unicode simple folding, as RE2's `(?i)`). */
  readonly caseInsensitive?: boolean;
  /** Match some part of the value instead of the whole (Consul's filter `matches` operator). */
  readonly search?: boolean;
}

/**
 * Compiles an RE2 pattern (re2js, a JavaScript port of RE2). What RE2 rejects is rejected here:
 * lookaround, backreferences, possessive repeats, `\C`, repeat counts over 1000.
 *
 * @param source - the pattern as Consul or the code gives it
 * @param field - the config field that holds it, for the error
 * @param options - case-insensitivity, and search instead of full match
 * @returns the compiled pattern
 * @throws MeshError `ERR_INVALID_CONFIG` naming `field`; `details.reason` is RE2's (`missing closing ): ...`)
 */
export function compileRe2(source: string, field: string, options: Re2Options = {}): Re2Pattern {
  let re: RE2JS;
  try {
    re = RE2JS.compile(source, options.caseInsensitive === true ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^error parsing regexp: /, "") : "rejected";
    throw new MeshError("ERR_INVALID_CONFIG", `Invalid configuration at '${field}': not a valid RE2 regular expression ${JSON.stringify(source)}: ${reason}`, {
      cause: err,
      details: { field, pattern: source, reason },
    });
  }
  boundDfaMemory(re);
  if (options.search === true) return { source, test: (value) => re.test(value) };
  // The literal every full match starts with (RE2 computes it from the compiled program; empty when
  // there is none): a value without it is refused without running the automaton.
  const prefix: unknown = re.re2().prefix;
  if (typeof prefix === "string" && prefix !== "") {
    const last = prefix.length - 1;
    return {
      source,
      test: (value) => {
        // From the end: patterns share their beginnings (`/api/v1/...`) and differ at the end of their prefixes.
        if (value.length <= last) return false;
        for (let i = last; i >= 0; i--) if (value.charCodeAt(i) !== prefix.charCodeAt(i)) return false;
        return re.testExact(value);
      },
    };
  }
  return { source, test: (value) => re.testExact(value) };
}

/**
 * Memory each pattern's lazy DFA may fill before it gives up for the automaton that needs none. re2js
 * gives each 8 MB, as RE2 does; a pattern whose DFA grows without end (`/.*a.{20}b`, about 2^20
 * states) then fills and refills 8 MB on every crafted 10 KB path: 12 to 190 ms each, measured. With
 * 64 KB it gives up early and such a path takes 3 to 5 ms (the automaton without a DFA runs at about
 * 0.35 µs a character for these patterns), and each pattern holds 64 KB rather than up to 8 MB.
 * Patterns whose DFA stays small (route and intention patterns as written) never reach the limit.
 */
const DFA_MEMORY_BYTES = 64 * 1024;

/**
 * Gives the pattern's lazy DFA {@link DFA_MEMORY_BYTES}. It goes through re2js's internals (the
 * engine's `lazyDFA` and the DFA class's constructor, which re2js does not export): checked shapes
 * only, so if a later re2js changes them, the pattern keeps re2js's own 8 MB, and only speed suffers.
 */
function boundDfaMemory(re: RE2JS): void {
  const engine = re.re2() as unknown as { prog?: unknown; lazyDFA?: unknown; readonly dfa?: unknown };
  if (!("lazyDFA" in engine) || engine.prog === undefined) return;
  const dfa = engine.dfa;
  if (typeof dfa !== "object" || dfa === null || !("maxMem" in dfa)) return;
  const Dfa = dfa.constructor as new (prog: unknown, maxMem: number) => object;
  engine.lazyDFA = new Dfa(engine.prog, DFA_MEMORY_BYTES);
}
