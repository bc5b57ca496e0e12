import { setTimeout as sleep } from "node:timers/promises";
import { collectYoungGarbage } from "./gc.ts";
import { LatencyRecorder } from "./latency-recorder.ts";
import { balancedSchedule } from "./order.ts";
import { runRound, type RoundSample } from "./run-round.ts";
import type { BenchSettings } from "./settings.ts";
import type { VariantRounds } from "./summary.ts";
import { createTracedVariant, createVariants, type Variant } from "./variants.ts";

function ordered<T>(items: readonly T[], order: readonly number[]): T[] {
  return order.map((i) => items[i]!);
}

function short(s: RoundSample): string {
  return `${s.rps.toFixed(0)} req/s ${s.cpuUsPerReq.toFixed(1)}us`;
}

/** Everything a bench run measured. */
export interface BenchResults {
  /** The interleaved rounds of all four variants, raw `Pool.request` first. */
  readonly rounds: readonly VariantRounds[];
  /** The paired phase: raw `Pool.request` and `client.request` alternating, nothing else in between. */
  readonly pairs: { readonly raw: VariantRounds; readonly mesh: VariantRounds } | undefined;
  /** After the rounds, in alternating pairs: `undici.request` on a plain Pool and with `mesh.dispatcher`. */
  readonly dispatcherPairs: { readonly bare: VariantRounds; readonly mesh: VariantRounds } | undefined;
  /** Then, in alternating pairs: `client.request` on a mesh without and one with an idle admin server. */
  readonly adminPairs: { readonly bare: VariantRounds; readonly mesh: VariantRounds } | undefined;
  /** Then, in alternating pairs: `undici.fetch` on a plain Pool and `client.fetch`. */
  readonly fetchPairs: { readonly bare: VariantRounds; readonly mesh: VariantRounds } | undefined;
  /**
   * The tracing phase, in balanced order: raw `Pool.request` and `client.request` without the SDK, and
   * with it the SDK's floor (raw with the same telemetry by hand) and `client.request`.
   */
  readonly tracing:
    | {
        readonly raw: VariantRounds;
        readonly floor: VariantRounds;
        readonly plain: VariantRounds;
        readonly traced: VariantRounds;
        /** Raw (`bare`) against raw traced by instrumentation-undici (`mesh`), in alternating pairs after the four. */
        readonly instrumentation: { readonly bare: VariantRounds; readonly mesh: VariantRounds };
        readonly spansPerRequest: number;
      }
    | undefined;
}

/**
 * Warms every variant up, then runs the interleaved rounds against the backend, printing one line per
 * round. The order follows {@link balancedSchedule}; each run starts with a scavenge ({@link collectYoungGarbage}), a short pause and
 * an unmeasured lead-in. Closes every pool before returning.
 *
 * Before all that, when `settings.pairs` > 0, runs raw and `client.request` alone in alternating pairs
 * (each first in half of them): the measure of the request path as a service that never calls `fetch`
 * sees it. After the rounds, as many alternating pairs of `undici.request` on a plain Pool against the
 * same call with `mesh.dispatcher`, then of `undici.fetch` on a plain Pool against `client.fetch`:
 * what each path adds to what it replaces. Then the tracing phase: raw and `client.request` without the OpenTelemetry SDK,
 * and with it the SDK's floor and `client.request`, in as many balanced rounds as there are pairs: the
 * cost of tracing and metrics, and how much of it is the SDK's own.
 *
 * @param origin - the backend, `http://127.0.0.1:<port>`
 * @param settings - rounds, durations, concurrency, pool settings
 *
 * @returns every round of every variant, and the pairs
 */
export async function runBench(origin: string, settings: BenchSettings): Promise<BenchResults> {
  const set = createVariants(origin, settings.path, settings.pool);
  const recorder = new LatencyRecorder();
  const samples = new Map<Variant, RoundSample[]>(set.variants.map((v) => [v, []]));
  const schedule = balancedSchedule(set.variants.length);
  const measure = async (v: Variant, ms: number): Promise<RoundSample> => {
    collectYoungGarbage();
    await sleep(settings.pauseMs);
    // Unmeasured lead-in: lets V8 re-optimize what the previous variant deoptimized.
    v.enter?.();
    try {
      if (settings.leadInMs > 0) await runRound(v.send, settings.concurrency, settings.leadInMs, recorder);
      return await runRound(v.send, settings.concurrency, ms, recorder);
    } finally {
      v.leave?.();
    }
  };
  const raw = set.variants.find((v) => v.key === "raw_request")!;
  const mesh = set.variants.find((v) => v.key === "client_request")!;
  /** `bare` and `meshed` alone in alternating pairs (bare first in odd pairs), after a warm-up of each. */
  const alternate = async (name: string, bare: Variant, meshed: Variant): Promise<{ readonly bare: VariantRounds; readonly mesh: VariantRounds }> => {
    const got = new Map<Variant, RoundSample[]>([[bare, []], [meshed, []]]);
    console.log(`warm-up of ${bare.key} and ${meshed.key}: ${settings.warmupMs} ms each, concurrency ${settings.concurrency}`);
    for (const v of [bare, meshed]) await measure(v, settings.warmupMs);
    for (let p = 0; p < settings.pairs; p++) {
      const parts: string[] = [];
      for (const v of p % 2 === 0 ? [bare, meshed] : [meshed, bare]) {
        const s = await measure(v, settings.roundMs);
        got.get(v)!.push(s);
        parts.push(`${v.key} ${short(s)}`);
      }
      console.log(`${name} ${p + 1}/${settings.pairs}: ${parts.join(" | ")}`);
    }
    return { bare: { key: bare.key, label: bare.label, rounds: got.get(bare)! }, mesh: { key: meshed.key, label: meshed.label, rounds: got.get(meshed)! } };
  };
  try {
    // Pairs first, before any fetch variant has run in this process: fetch and request share undici code,
    // and once fetch has run, V8's view of that code is no longer the one a request-only service has.
    const pairs = settings.pairs > 0 ? await alternate("pair", raw, mesh) : undefined;
    console.log(`warm-up: ${settings.warmupMs} ms per variant, concurrency ${settings.concurrency}`);
    for (const v of ordered(set.variants, schedule.warmup)) await measure(v, settings.warmupMs);
    for (let r = 0; r < settings.rounds; r++) {
      const parts: string[] = [];
      for (const v of ordered(set.variants, schedule.rounds[r % schedule.rounds.length]!)) {
        const s = await measure(v, settings.roundMs);
        samples.get(v)!.push(s);
        parts.push(`${v.key} ${short(s)}`);
      }
      console.log(`round ${r + 1}/${settings.rounds}: ${parts.join(" | ")}`);
    }
    // The dispatcher and fetch paths, each against what it replaces, in alternating pairs (bare first in
    // odd pairs), as many as the request pairs.
    const undiciFetch = set.variants.find((v) => v.key === "undici_fetch")!;
    const clientFetch = set.variants.find((v) => v.key === "client_fetch")!;
    const dispatcherPairs = settings.pairs > 0 ? await alternate("dispatcher pair", set.dispatcher.bare, set.dispatcher.mesh) : undefined;
    const fetchPairs = settings.pairs > 0 ? await alternate("fetch pair", undiciFetch, clientFetch) : undefined;
    // An admin server nobody reads must cost the request path nothing: client.request on two meshes alike, one with it.
    await set.admin.startAdmin();
    const adminPairs = settings.pairs > 0 ? await alternate("admin pair", set.admin.bare, set.admin.mesh) : undefined;
    // Last: the traced calls take other branches of the request path, which would change how V8 runs it
    // for the rounds above. The SDK exists only for this phase (its globals are unregistered after it).
    // Four variants: raw and client.request without the SDK, the SDK's floor (raw with the same
    // telemetry by hand) and client.request with it, in balanced order. Then, with the SDK still up,
    // raw against raw traced by instrumentation-undici, in alternating pairs.
    const withSdk = createTracedVariant(origin, settings.path, settings.pool);
    const traced = withSdk.variant;
    const floor = withSdk.floor;
    const instrumented = withSdk.instrumented;
    const tracedSet = [raw, floor, mesh, traced];
    const tracing = new Map<Variant, RoundSample[]>(tracedSet.map((v) => [v, []]));
    const tracedSchedule = balancedSchedule(tracedSet.length);
    let spansPerRequest = 0;
    let instrumentationPairs: { readonly bare: VariantRounds; readonly mesh: VariantRounds } | undefined;
    try {
      if (settings.pairs > 0) {
        console.log(`warm-up of the SDK floor and client.request with the OpenTelemetry SDK: ${settings.warmupMs} ms each`);
        for (const v of [floor, traced]) await measure(v, settings.warmupMs);
        withSdk.sdk.trim();
      }
      for (let p = 0; p < settings.pairs; p++) {
        const parts: string[] = [];
        for (const v of ordered(tracedSet, tracedSchedule.rounds[p % tracedSchedule.rounds.length]!)) {
          const s = await measure(v, settings.roundMs);
          tracing.get(v)!.push(s);
          parts.push(`${v.key} ${short(s)}`);
        }
        withSdk.sdk.trim();
        console.log(`tracing round ${p + 1}/${settings.pairs}: ${parts.join(" | ")}`);
      }
      if (settings.pairs > 0) {
        instrumentationPairs = await alternate("instrumentation pair", raw, instrumented);
        withSdk.sdk.trim();
      }
      // What each traced request exported: 1000 requests one after another, then a flush.
      if (settings.pairs > 0) {
        await withSdk.sdk.tracerProvider.forceFlush();
        const before = withSdk.sdk.exportedSpans();
        for (let i = 0; i < 1000; i++) await traced.send();
        await withSdk.sdk.tracerProvider.forceFlush();
        spansPerRequest = (withSdk.sdk.exportedSpans() - before) / 1000;
      }
    } finally {
      await withSdk.close();
    }
    return {
      rounds: set.variants.map((v) => ({ key: v.key, label: v.label, rounds: samples.get(v)! })),
      pairs: pairs === undefined ? undefined : { raw: pairs.bare, mesh: pairs.mesh },
      dispatcherPairs,
      fetchPairs,
      adminPairs,
      tracing:
        settings.pairs > 0
          ? {
              raw: { key: raw.key, label: raw.label, rounds: tracing.get(raw)! },
              floor: { key: floor.key, label: floor.label, rounds: tracing.get(floor)! },
              plain: { key: mesh.key, label: mesh.label, rounds: tracing.get(mesh)! },
              traced: { key: traced.key, label: traced.label, rounds: tracing.get(traced)! },
              instrumentation: instrumentationPairs!,
              spansPerRequest,
            }
          : undefined,
    };
  } finally {
    await set.close();
  }
}
