/**
 * `npm run bench:chaos`: do the mesh's default resilience settings hold when instances misbehave?
 * (issue 20)
 *
 * Ten instances of one service run in child processes on 127.0.0.1 (bench/chaos-backend.ts for HTTP,
 * bench/grpc-chaos-backend.ts for gRPC), registered in a MockRegistry that keeps listing them whatever
 * happens (as Consul does until a health check fails). A closed loop of 32 callers sends a mix of GETs
 * and POSTs (a fifth of the calls, drawn at random; each POST carries a unique id, which the instances
 * report over IPC the moment it arrives, so an id sent twice is seen even on an instance killed right
 * after). Three client
 * paths: `mesh.client(svc).request()`, `undici.request()` with `mesh.dispatcher`, and a grpc-js client
 * from `grpcMesh(mesh)` (unary Get as the GET, Create as the POST).
 *
 * Every scenario runs on a fresh mesh (default resilience settings unless it says otherwise) and fresh
 * instances: a no-fault baseline; one of ten SIGKILLed mid-run (it kills itself the moment it holds a
 * POST, so the kill always catches one; the calls in flight on it then are counted from the caller's
 * side on HTTP, through the mesh's `proxyless:pick` channel, and by the instance itself on gRPC); one
 * hung (accepts, never answers; with a per-try timeout of 300 ms, the one setting changed); one
 * answering 503 (gRPC: UNAVAILABLE); one flapping (periods of 503s and OKs, 503s first); all failing
 * (from the start, so every call and attempt of the mesh counts); and `mesh.destroy()` while requests
 * wait in the pools (`pool: { connections: 1 }`, all instances hung; gRPC: 200 calls on the wire to
 * hung instances). Apart from the baseline and all-failing, each scenario runs healthy for a lead-in,
 * then the fault starts; its figures are those of the calls that ended from then on. The figures and
 * the issue's goals go to `bench/results/chaos.json`; the goals are what the fixed code must meet, so a
 * run on older code may miss several.
 *
 *   npm run bench:chaos                 # about 3.5 minutes
 *   npm run bench:chaos -- --quick      # under a minute: short phases, to check it works
 *   npm run bench:chaos -- --paths request,grpc --scenarios kill,all_failing
 *
 * Durations and sizes: CHAOS_CONCURRENCY (32), CHAOS_LEAD_IN_MS (1000; quick 250), CHAOS_WINDOW_MS
 * (5000; quick 800), CHAOS_KILL_WINDOW_MS (6000; quick 1200), CHAOS_ALL_FAIL_MS (12000; quick 1200),
 * CHAOS_FLAP_PERIOD_MS (1000; quick 250), CHAOS_PER_TRY_MS (300), CHAOS_SERVICE_MS (5),
 * CHAOS_DESTROY_CALLS (200), CHAOS_OUTPUT (bench/results/chaos.json).
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { createMesh, type Mesh, type MeshOptions } from "proxyless";
import { MockRegistry, createSeededRandom } from "proxyless/testing";
import { envInt } from "./lib/env.ts";
import { writeJson } from "./lib/report.ts";
import { environment } from "./lib/settings.ts";
import { round } from "./lib/stats.ts";
import { Fleet } from "./lib/chaos-fleet.ts";
import { ClosedLoad, inFlightOn, Tally, type CallRecord } from "./lib/chaos-load.ts";
import { PATHS, SERVICE, type Caller, type ChaosPath, type PathName } from "./lib/chaos-paths.ts";
import type { ChaosMode, ChaosStats } from "./lib/chaos-protocol.ts";
import { buildReport, printReport, type PathFigures, type ScenarioResult } from "./lib/chaos-report.ts";

const SCENARIOS = ["baseline", "kill", "hung", "fail_503", "flapping", "all_failing", "destroy"] as const;
type ScenarioName = (typeof SCENARIOS)[number];

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    paths: { type: "string" },
    scenarios: { type: "string" },
  },
});
const quick = flags.quick;

function pick<T extends string>(raw: string | undefined, all: readonly T[], what: string): T[] {
  if (raw === undefined) return [...all];
  const chosen = raw.split(",").map((s) => s.trim());
  for (const c of chosen) if (!(all as readonly string[]).includes(c)) throw new Error(`unknown ${what} ${JSON.stringify(c)}; known: ${all.join(", ")}`);
  return chosen as T[];
}

const settings = {
  mode: quick ? "quick" : "full",
  instances: 10,
  concurrency: envInt("CHAOS_CONCURRENCY", 32, 1),
  /** The share of calls that are POSTs (drawn from a seeded random sequence per phase). */
  postShare: 0.2,
  serviceMs: envInt("CHAOS_SERVICE_MS", 5, 0),
  leadInMs: envInt("CHAOS_LEAD_IN_MS", quick ? 250 : 1000, 0),
  windowMs: envInt("CHAOS_WINDOW_MS", quick ? 800 : 5000, 100),
  killWindowMs: envInt("CHAOS_KILL_WINDOW_MS", quick ? 1200 : 6000, 100),
  // Longer than the breaker's default 10 s open period in full runs, so a half-open probe is seen.
  allFailMs: envInt("CHAOS_ALL_FAIL_MS", quick ? 1200 : 12_000, 100),
  flapPeriodMs: envInt("CHAOS_FLAP_PERIOD_MS", quick ? 250 : 1000, 10),
  perTryTimeoutMs: envInt("CHAOS_PER_TRY_MS", 300, 1),
  destroyCalls: envInt("CHAOS_DESTROY_CALLS", 200, 20),
  /** How long the bench waits for calls in flight after a phase (the default deadline is 15 s). */
  drainCapMs: 20_000,
  /** How long it waits for `mesh.destroy()` (then records the cap) and for `mesh.close()`. */
  destroyCapMs: quick ? 1500 : 5000,
  closeCapMs: 5_000,
  /** The instance that misbehaves in the one-bad scenarios. */
  badIndex: 3,
  budgetMinPerSecond: 10,
  paths: pick<PathName>(flags.paths, PATHS.map((p) => p.name), "path"),
  scenarios: pick<ScenarioName>(flags.scenarios, SCENARIOS, "scenario"),
};
const OUTPUT = process.env.CHAOS_OUTPUT ?? fileURLToPath(new URL("results/chaos.json", import.meta.url));

/** Mesh events seen in a phase, in ms from the phase's start. */
interface EventLog {
  readonly breaker: { readonly t_ms: number; readonly state: string }[];
  readonly ejected: { readonly t_ms: number; readonly endpoint: string; readonly failures: number; readonly reason: string }[];
  readonly returned: { readonly t_ms: number; readonly endpoint: string }[];
  budgetExhausted: number;
}

function watchEvents(mesh: Mesh, t0: number): EventLog {
  const log: EventLog = { breaker: [], ejected: [], returned: [], budgetExhausted: 0 };
  const at = (): number => round(performance.now() - t0, 1);
  mesh.on("breaker_state_changed", (e) => log.breaker.push({ t_ms: at(), state: e.state }));
  mesh.on("endpoint_ejected", (e) => log.ejected.push({ t_ms: at(), endpoint: e.endpoint, failures: e.failures, reason: e.reason }));
  mesh.on("endpoint_returned", (e) => log.returned.push({ t_ms: at(), endpoint: e.endpoint }));
  mesh.on("retry_budget_exhausted", () => log.budgetExhausted++);
  return log;
}

function sumStats(stats: readonly (ChaosStats | undefined)[]): { attempts: number; get: number; post: number; failed: number } {
  const s = { attempts: 0, get: 0, post: 0, failed: 0 };
  for (const x of stats) {
    if (x === undefined) continue;
    s.get += x.get;
    s.post += x.post;
    s.failed += x.failed;
  }
  s.attempts = s.get + s.post;
  return s;
}

/** Resolves with `promise`'s time in ms, or undefined if it did not settle within `capMs`. */
async function timed(promise: Promise<unknown>, capMs: number): Promise<number | undefined> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), capMs);
  });
  const settled = promise.then(
    () => true,
    () => true,
  );
  const result = await Promise.race([settled, cap]);
  clearTimeout(timer);
  return result ? performance.now() - start : undefined;
}

/**
 * Runs one scenario on one path: fresh instances, a fresh mesh, the load, the fault, the teardown.
 * The instances are killed whatever happens.
 */
async function runScenario(path: ChaosPath, scenario: ScenarioName, phase: number): Promise<ScenarioResult> {
  const initial: ChaosMode = scenario === "all_failing" ? "fail" : scenario === "destroy" ? "hang" : "ok";
  const fleet = await Fleet.start(path.script, settings.instances, { mode: initial, serviceMs: settings.serviceMs, flapPeriodMs: settings.flapPeriodMs });
  // The defaults, except where the scenario needs otherwise.
  const options: Pick<MeshOptions, "resilience" | "pool"> =
    scenario === "hung" ? { resilience: { perTryTimeoutMs: settings.perTryTimeoutMs } } : scenario === "destroy" && path.name !== "grpc" ? { pool: { connections: 1 } } : {};
  const result: Record<string, unknown> = { scenario, path: path.name, mesh_options: options };
  let mesh: Mesh | undefined;
  let caller: Caller | undefined;
  let load: ClosedLoad | undefined;
  let events: EventLog | undefined;
  try {
    const registry = new MockRegistry({ [SERVICE]: fleet.instances.map((i) => ({ id: i.id, address: "127.0.0.1", port: i.port })) });
    mesh = createMesh({ registry, ...options });
    const t0 = performance.now();
    events = watchEvents(mesh, t0);
    caller = path.caller(mesh);
    if (scenario === "destroy") {
      Object.assign(result, await destroyScenario(path, mesh, fleet, caller, phase));
    } else {
      const random = createSeededRandom(phase);
      // The kill scenario on HTTP follows each call's attempts (the mesh's pick channel), to count the
      // calls in flight on the killed instance from the caller's side.
      const track = scenario === "kill" && path.name !== "grpc";
      load = new ClosedLoad(caller.call, settings.concurrency, settings.postShare, () => random.next(), `${path.name}-${scenario}-${phase}`, track);
      if (scenario === "all_failing") {
        // The instances fail from the start: every call and every attempt of this mesh is counted.
        load.windowStart = t0;
        await sleep(settings.allFailMs);
      } else {
        await sleep(settings.leadInMs);
        load.windowStart = performance.now();
        const window = scenario === "kill" ? settings.killWindowMs : settings.windowMs;
        const deadline = load.windowStart + window;
        Object.assign(result, await injectFault(scenario, fleet, load));
        await sleep(Math.max(0, deadline - performance.now()));
      }
      const { drainMs, unsettled } = await load.stop(settings.drainCapMs);
      const seconds = (performance.now() - load.windowStart) / 1000;
      const stats = await fleet.stats(); // also flushes every POST id reported so far
      result.window_ms = round(load.stoppedAt - load.windowStart, 0);
      result.drain_ms = round(drainMs, 0);
      result.unsettled_after_drain = unsettled;
      result.before = load.before.toJson();
      result.window = load.window.toJson();
      result.backend_attempts = sumStats(stats);
      if (scenario !== "baseline" && scenario !== "all_failing") result.bad_instance_stats = stats[settings.badIndex] ?? null;
      if (scenario === "kill") result.killed = { ...(result.killed as object), ...killAnalysis(load, fleet, result.killed_at as number | undefined) };
      delete result.killed_at;
      if (scenario === "all_failing") {
        const calls = load.window.calls;
        const attempts = sumStats(stats).attempts;
        const refused = load.window.outcomes.ERR_CIRCUIT_OPEN ?? 0;
        result.all_failing = {
          calls,
          attempts,
          seconds: round(seconds, 2),
          attempts_per_call: calls === 0 ? null : round(attempts / calls, 4),
          goal: calls === 0 ? null : round(1.2 + (settings.budgetMinPerSecond * seconds) / calls, 4),
          calls_refused_circuit_open: refused,
          // Retry amplification among the calls the breaker let through (not a goal; for reading the above).
          attempts_per_call_sent: calls - refused === 0 ? null : round(attempts / (calls - refused), 4),
        };
      }
    }
  } finally {
    if (load !== undefined) await load.stop(settings.drainCapMs);
    caller?.close();
    // The destroy scenario destroyed the mesh already (if it got that far; destroying again is harmless).
    // Its promise is not awaited again: close() would wait on the same one.
    if (mesh === undefined) {
      // createMesh threw: nothing to close.
    } else if (scenario === "destroy") void mesh.destroy().catch(() => undefined);
    else {
      const closeMs = await timed(mesh.close(), settings.closeCapMs);
      if (closeMs === undefined) await timed(mesh.destroy(), settings.closeCapMs);
      result.close_ms = closeMs === undefined ? null : round(closeMs, 0);
    }
    await fleet.stop();
  }
  const duplicates = [...fleet.ids.processed.values()].filter((n) => n > 1).length;
  const receivedTwice = [...fleet.ids.received.values()].filter((n) => n > 1).length;
  result.post_ids = { processed: fleet.ids.processed.size, received: fleet.ids.received.size, processed_more_than_once: duplicates, received_more_than_once: receivedTwice };
  if (events === undefined) throw new Error("unreachable: the scenario ran without a mesh");
  result.events = { breaker: events.breaker, ejected: events.ejected, returned: events.returned, retry_budget_exhausted: events.budgetExhausted };
  return result as unknown as ScenarioResult;
}

/**
 * What the kill did to the calls: how many were in flight on the killed instance when it died (from
 * the caller's side, HTTP: calls started before the death, not ended by it, whose latest attempt
 * before it went to that instance; gRPC, where the mesh publishes no picks: the instance's own count of
 * requests received and not answered), and what became of the calls that failed.
 */
function killAnalysis(load: ClosedLoad, fleet: Fleet, diedAt: number | undefined): Record<string, unknown> {
  const killed = fleet.instances[settings.badIndex]!.id;
  if (load.records.length === 0 || diedAt === undefined) {
    const own = fleet.killedStats(settings.badIndex);
    return { in_flight_on_killed_source: "instance", in_flight_on_killed: own?.inFlight ?? null, posts_in_flight_on_killed: own?.inFlightPost ?? null };
  }
  const onIt = new Set(inFlightOn(load.records, diedAt, killed));
  const failed = load.records.filter((r) => r.end >= load.windowStart && r.outcome !== "ok");
  const lastPick = (r: CallRecord): string | undefined => r.picks.at(-1)?.[1];
  return {
    in_flight_on_killed_source: "caller (proxyless:pick channel)",
    in_flight_on_killed: onIt.size,
    posts_in_flight_on_killed: [...onIt].filter((r) => r.post).length,
    failed_calls_in_flight_on_killed: failed.filter((r) => onIt.has(r)).length,
    failed_calls_last_attempt_on_killed: failed.filter((r) => lastPick(r) === killed).length,
    // A POST no instance ever reported: it failed without reaching one (nothing was processed).
    failed_posts_never_received: failed.filter((r) => r.post && !fleet.ids.received.has(r.id)).length,
    failed: failed.slice(0, 50).map((r) => ({
      method: r.post ? "POST" : "GET",
      outcome: r.outcome,
      started_ms: round(r.start - diedAt, 2),
      ended_ms: round(r.end - diedAt, 2),
      attempts: r.picks.map(([t, e]) => `${e}@${round(t - diedAt, 2)}ms`),
      received_by_instances: fleet.ids.received.get(r.id) ?? 0,
    })),
  };
}

/** Starts the scenario's fault at the window's start; says what it did. */
async function injectFault(scenario: ScenarioName, fleet: Fleet, load: ClosedLoad): Promise<Record<string, unknown>> {
  const bad = settings.badIndex;
  switch (scenario) {
    case "baseline":
      return {};
    case "kill": {
      const inFlightTotal = load.inFlight;
      // It dies the moment it holds a POST (at once if it does): the kill always catches one.
      const { stats, signal, ms, diedAt } = await fleet.kill(bad, true);
      return {
        killed_at: diedAt,
        killed: {
          instance: fleet.instances[bad]!.id,
          signal,
          ms_until_dead: round(ms, 1),
          in_flight_on_killed_by_instance: stats?.inFlight ?? null,
          posts_in_flight_on_killed_by_instance: stats?.inFlightPost ?? null,
          in_flight_total_at_kill: inFlightTotal,
          attempts_it_had_seen: stats === undefined ? null : stats.get + stats.post,
        },
      };
    }
    case "hung":
    case "fail_503":
    case "flapping": {
      const mode: ChaosMode = scenario === "hung" ? "hang" : scenario === "fail_503" ? "fail" : "flap";
      await fleet.setMode(bad, mode);
      return { bad: { instance: fleet.instances[bad]!.id, mode } };
    }
    default:
      throw new Error(`no fault for ${scenario}`);
  }
}

/**
 * `mesh.destroy()` with calls waiting: every instance hangs, the pools have one connection per
 * endpoint (HTTP), and `destroyCalls` calls are sent at once. Once each instance holds at least one,
 * the rest wait in the pools (gRPC: all are on the wire, multiplexed); then `mesh.destroy()` is timed,
 * and how the calls end: within the cap after it, and then after the caller is closed (the gRPC client
 * and `grpcMesh`; nothing for HTTP).
 */
async function destroyScenario(path: ChaosPath, mesh: Mesh, fleet: Fleet, caller: Caller, phase: number): Promise<Record<string, unknown>> {
  const random = createSeededRandom(phase);
  const tally = new Tally();
  let settled = 0;
  const started = performance.now();
  const calls = Array.from({ length: settings.destroyCalls }, (_, n) => {
    const post = random.next() < settings.postShare;
    const t = performance.now();
    return caller.call(post, `${path.name}-destroy-${phase}-${n}`).then((outcome) => {
      settled++;
      tally.add(post, outcome, performance.now() - t);
    });
  });
  // HTTP: one request on each endpoint's only connection; gRPC: every call reaches an instance.
  const want = path.name === "grpc" ? settings.destroyCalls : settings.instances;
  let reached = true;
  try {
    await fleet.waitHung(want, 10_000);
  } catch {
    reached = false;
  }
  const settledBefore = settled;
  const arrivedAtInstances = fleet.hungArrivals;
  const destroyStart = performance.now();
  const destroyMs = await timed(mesh.destroy(), settings.destroyCapMs);
  const sinceDestroy = performance.now() - destroyStart;
  // The calls get the rest of the cap (at least a second) after destroy() to end.
  const settledMs = await timed(Promise.all(calls), Math.max(1000, settings.destroyCapMs - sinceDestroy));
  const unsettled = settings.destroyCalls - settled;
  const outcomes = { ...tally.outcomes };
  let afterClose: Record<string, unknown> | undefined;
  if (unsettled > 0) {
    caller.close();
    const ms = await timed(Promise.all(calls), quick ? 1000 : 2000);
    afterClose = { settled_ms: ms === undefined ? null : round(ms, 1), unsettled: settings.destroyCalls - settled, outcomes: { ...tally.outcomes } };
  }
  return {
    destroy: {
      calls: settings.destroyCalls,
      all_connections_busy_before_destroy: reached,
      ms_until_destroy_started: round(destroyStart - started, 0),
      arrived_at_instances: arrivedAtInstances,
      queued_in_pools: path.name === "grpc" ? 0 : settings.destroyCalls - arrivedAtInstances - settledBefore,
      settled_before_destroy: settledBefore,
      destroy_ms: destroyMs === undefined ? null : round(destroyMs, 1),
      destroy_resolved: destroyMs !== undefined,
      destroy_cap_ms: settings.destroyCapMs,
      calls_settled_after_destroy_ms: settledMs === undefined ? null : round(settledMs + sinceDestroy, 1),
      calls_unsettled: unsettled,
      outcomes,
      ...(afterClose === undefined ? {} : { after_caller_closed: afterClose }),
    },
  };
}

// Read before anything runs: the modules under src/ were loaded at start, whatever changes there later.
const code = codeMeasured();
const began = performance.now();
const byPath: Partial<Record<PathName, PathFigures>> = {};
const errors: { path: PathName; scenario: ScenarioName; error: string }[] = [];
console.log(
  `chaos bench (${settings.mode}): ${settings.instances} instances, ${settings.concurrency} calls in flight, ${settings.postShare * 100}% POSTs; ` +
    `paths ${settings.paths.join(", ")}; scenarios ${settings.scenarios.join(", ")}\n`,
);
let phase = 0;
for (const path of PATHS.filter((p) => settings.paths.includes(p.name))) {
  const scenarios: Partial<Record<ScenarioName, ScenarioResult>> = {};
  for (const scenario of settings.scenarios) {
    const t = performance.now();
    let line: string;
    try {
      const r = await runScenario(path, scenario, ++phase);
      scenarios[scenario] = r;
      line = describe(r);
    } catch (err) {
      // One scenario failing to run (a backend that did not answer, say) must not cost the others.
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      errors.push({ path: path.name, scenario, error: message });
      line = `DID NOT RUN: ${message}`;
    }
    console.log(`${path.name.padEnd(10)} ${scenario.padEnd(12)} ${line}  (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  }
  byPath[path.name] = { label: path.label, scenarios };
}
const totalSeconds = (performance.now() - began) / 1000;
const report = buildReport(byPath, settings, environment(), totalSeconds, errors, code);
printReport(report);
await writeJson(OUTPUT, report);
console.log(`\nwrote ${OUTPUT} (${totalSeconds.toFixed(0)} s in all)`);
if (errors.length > 0) {
  console.error(`${errors.length} scenario(s) did not run: ${errors.map((e) => `${e.path}/${e.scenario}`).join(", ")}`);
  process.exitCode = 1;
}

/** The commit, and the files under src/ that differ from it: another change may be under way there. */
function codeMeasured(): { commit: string; src_uncommitted: string[] } {
  const git = (...args: string[]): string => {
    try {
      return execFileSync("git", args, { cwd: fileURLToPath(new URL("..", import.meta.url)), encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return "";
    }
  };
  const files = git("status", "--porcelain", "--", "src")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.slice(3));
  return { commit: git("rev-parse", "HEAD").trim() || "unknown", src_uncommitted: files };
}

function describe(r: ScenarioResult): string {
  if (r.destroy !== undefined) return `destroy ${r.destroy.destroy_ms ?? `>${r.destroy.destroy_cap_ms}`} ms, ${r.destroy.calls_unsettled} calls unsettled, outcomes ${JSON.stringify(r.destroy.outcomes)}`;
  const w = r.window!;
  const extra = r.killed !== undefined ? ` in flight on killed ${String(r.killed.in_flight_on_killed)}` : r.all_failing !== undefined ? ` attempts/call ${String(r.all_failing.attempts_per_call)} (goal ${String(r.all_failing.goal)})` : "";
  const breaker = r.events.breaker.map((b) => b.state).join(">") || "-";
  return `${w.calls} calls, GET ok ${String(w.get_success_rate)}, POST ok ${String(w.post_success_rate)}, dup ${r.post_ids.processed_more_than_once}, breaker ${breaker}, ejected ${r.events.ejected.length},${extra} ${JSON.stringify(w.outcomes)}`;
}
