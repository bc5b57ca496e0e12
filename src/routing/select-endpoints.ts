import { MeshError } from "../core/errors.ts";
import type { DiscoveryWait } from "../upstream/discovery-wait.ts";
import type { PickedEndpoints } from "../upstream/endpoint-pool.ts";
import type { PoolHandle } from "../upstream/pool-handle.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import { resolveTarget, unreachable, type RouteDecision, type RouteTarget } from "./route-decision.ts";

/**
 * Where a routed request takes its endpoint from. `H` is the transport's endpoint handle: routing hands
 * on the upstream's own handles without naming their class. @internal
 */
export interface Selection<H extends PoolHandle = PoolHandle> {
  readonly state: UpstreamView<H>;
  /** The target the endpoints belong to: the decision's, or a failover target. */
  readonly target: RouteTarget;
  readonly picker: NonNullable<PickedEndpoints<H>["picker"]>;
  /** The endpoints the picker balances over. */
  readonly targets: PickedEndpoints<H>["targets"];
  /** The targets passed over before this one, and why. */
  readonly skipped: readonly { readonly target: RouteTarget; readonly reason: string }[];
}

/** What {@link selectEndpoints} found. @internal */
export type SelectOutcome<H extends PoolHandle = PoolHandle> =
  | { readonly kind: "ready"; readonly selection: Selection<H> }
  | { readonly kind: "wait"; readonly state: UpstreamView<H> }
  | { readonly kind: "fail"; readonly error: MeshError; readonly skipped: readonly { readonly target: RouteTarget; readonly reason: string }[] };

const show = (t: RouteTarget): string => (t.subset === undefined ? `'${t.service}'` : `subset '${t.subset}' of '${t.service}'`);

/**
 * Finds the endpoints for a routing decision: the target's (its subset's, when it names one), and when
 * none can take traffic, the resolver's failover targets in order (`Failover[subset]`, else
 * `Failover["*"]`). Targets in other datacenters, namespaces or peers are passed over: this registry
 * cannot reach them. A service the registry has not answered for yet is waited for first, unless
 * `noWait` (then it counts as having no endpoints).
 *
 * @internal
 */
export function selectEndpoints<H extends PoolHandle>(decision: RouteDecision, stateOf: (service: string) => UpstreamView<H>, noWait: boolean): SelectOutcome<H> {
  const primary = decision.target;
  const resolver = stateOf(primary.service).routing.resolver;
  const failover = resolver?.failover?.[primary.subset ?? "*"] ?? resolver?.failover?.["*"];
  const candidates: { readonly target: RouteTarget; readonly far?: string; readonly problem?: string }[] = [{ target: primary }];
  for (const ref of failover?.targets ?? []) {
    // As Consul: a failover target on the same service keeps the subset unless it names one; each
    // target goes through its own resolver (redirect, default subset); the primary is not tried twice.
    const same = ref.service === undefined || ref.service === primary.service;
    const start = { service: ref.service ?? primary.service, subset: ref.subset ?? (same ? primary.subset : undefined) };
    const far = unreachable(ref);
    if (far !== undefined) {
      candidates.push({ target: start, far });
      continue;
    }
    let target: RouteTarget;
    try {
      target = resolveTarget(start, (service) => stateOf(service).routing, decision.service).target;
    } catch (err) {
      candidates.push({ target: start, problem: (err as Error).message });
      continue;
    }
    if (candidates.some((c) => c.far === undefined && c.problem === undefined && c.target.service === target.service && c.target.subset === target.subset)) continue;
    candidates.push({ target });
  }
  const skipped: { target: RouteTarget; reason: string }[] = [];
  let firstError: MeshError | undefined;
  for (const { target, far, problem } of candidates) {
    if (far !== undefined || problem !== undefined) {
      skipped.push({ target, reason: problem ?? `${far ?? ""} is not reachable through this registry` });
      continue;
    }
    const state = stateOf(target.service);
    if (!state.settled && !noWait) return { kind: "wait", state };
    let picked: PickedEndpoints<H>;
    if (target.subset === undefined) {
      picked = { picker: state.picker, targets: state.targets };
    } else if (!state.routing.subsets.has(target.subset)) {
      skipped.push({ target, reason: `'${target.service}' defines no subset '${target.subset}'` });
      continue;
    } else {
      picked = state.subsetPicker(target.subset);
    }
    if (picked.picker !== undefined) return { kind: "ready", selection: { state, target, picker: picked.picker, targets: picked.targets, skipped } };
    // A subset's emptiness is its own story only when the service has endpoints at all.
    const error =
      target.subset === undefined || !state.settled || (state.endpoints?.all.length ?? 0) === 0
        ? state.unavailableError()
        : new MeshError("ERR_NO_ENDPOINTS", `Subset '${target.subset}' of service '${target.service}' has no endpoint that can take traffic (none ready matches its filter).`, {
            details: { service: target.service, subset: target.subset },
          });
    firstError ??= error;
    skipped.push({ target, reason: error.message });
  }
  const error = firstError ?? new MeshError("ERR_NO_ENDPOINTS", `No endpoint for ${show(primary)}.`, { details: { service: primary.service } });
  if (skipped.length <= 1) return { kind: "fail", error, skipped };
  const tried = skipped.map((s) => `${show(s.target)}: ${s.reason}`).join("; ");
  return { kind: "fail", error: new MeshError(error.code, `${error.message} Failover found nothing either (${tried}).`, { cause: error, details: { ...error.details, failover: skipped.length - 1 } }), skipped };
}

/**
 * {@link selectEndpoints}, waiting for services the registry has not answered for yet (once per
 * service, all within one wait: by default a call's, from the decision's service); a service waited for
 * once counts as it is. @internal
 */
export async function selectWaiting<H extends PoolHandle>(decision: RouteDecision, stateOf: (service: string) => UpstreamView<H>, wait?: DiscoveryWait): Promise<Exclude<SelectOutcome<H>, { readonly kind: "wait" }>> {
  const waited = new Set<UpstreamView<H>>();
  for (;;) {
    const outcome = selectEndpoints(decision, stateOf, false);
    if (outcome.kind !== "wait") return outcome;
    wait ??= stateOf(decision.service).discoveryWait(true);
    if (waited.has(outcome.state)) {
      const last = selectEndpoints(decision, stateOf, true);
      if (last.kind === "ready") return last;
      // The call's deadline, not the discovery timeout, ended the wait: the call timed out.
      const timedOut = !outcome.state.settled && wait.deadlineMs !== undefined;
      if (last.kind === "fail" && !timedOut) return last;
      return { kind: "fail", error: outcome.state.unavailableError(wait), skipped: last.kind === "fail" ? last.skipped : [] };
    }
    waited.add(outcome.state);
    await outcome.state.settle(wait);
  }
}
