import { defined } from "../core/defined.ts";
import type { FaultPolicy, HeaderChanges, MirrorPolicy, RouteMatch } from "../config/route-config.ts";
import { MeshError, type MeshErrorCode } from "../core/errors.ts";
import type { HealthStatus } from "../endpoint/endpoint.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import { decideRoute, type ChosenSplit, type RouteDecision, type RouteTarget } from "./route-decision.ts";
import { RequestView, type RoutableRequest } from "./request-view.ts";
import { selectWaiting, type Selection } from "./select-endpoints.ts";

/** An endpoint a request could go to. */
export interface CandidateEndpoint {
  /** Endpoint id. */
  readonly id: string;
  /** IP address or host. */
  readonly address: string;
  /** Port. */
  readonly port: number;
  /** The weight the balancer uses. */
  readonly weight: number;
  /** Registry health. */
  readonly health: HealthStatus;
}

/** Timeouts in force for a request, in ms. */
export interface RouteTimeouts {
  /** Total time for the request: the route's, else the resolver's. */
  readonly requestTimeoutMs?: number;
  /** How long the stream may idle: the route's. */
  readonly idleTimeoutMs?: number;
  /** Time to connect: the resolver's. */
  readonly connectTimeoutMs?: number;
}

/** A route's retry settings. */
export interface RetryPlan {
  /** Retries allowed after the first attempt. */
  readonly numRetries?: number;
  /** Retry when a connection cannot be made. */
  readonly retryOnConnectFailure?: boolean;
  /** Retry on these status codes. */
  readonly retryOnStatusCodes?: readonly number[];
  /** Retry on these conditions. */
  readonly retryOn?: readonly string[];
}

/** A target routing passed over, and why. */
export interface SkippedTarget {
  /** The target. */
  readonly target: RouteTarget;
  /** Why it was passed over. */
  readonly reason: string;
}

/** The route that matched. */
export interface MatchedRoute {
  /** Its position in the service's router. */
  readonly index: number;
  /** Its match; undefined for a catch-all route. */
  readonly match: RouteMatch | undefined;
}

/** Why a request would fail. */
export interface ExplainedError {
  /** The error code the request would fail with. */
  readonly code: MeshErrorCode;
  /** Its message. */
  readonly message: string;
}

/** The request as routing read it. */
export interface ExplainedRequest {
  /** The method, upper case. */
  readonly method: string;
  /** The path with query string. */
  readonly path: string;
}

/** What {@link Mesh.explain} tells: where a request would go and why, without sending it. */
export interface RouteExplanation {
  /** The service called. */
  readonly service: string;
  /** The request as routing read it. */
  readonly request: ExplainedRequest;
  /** The route that matched (its position in the router and its match); undefined for the default route. */
  readonly route: MatchedRoute | undefined;
  /** The splits the next such request would take (a sticky split by its header or cookie). */
  readonly splits: readonly ChosenSplit[];
  /** Targets a resolver redirected from. */
  readonly redirects: readonly RouteTarget[];
  /** The target after routes, splits, redirects and the default subset. */
  readonly target: RouteTarget | undefined;
  /** Where the endpoints come from: the target, or the failover target used; undefined when none. */
  readonly endpointsFrom: RouteTarget | undefined;
  /** Targets passed over on the way (empty, or the failover story). */
  readonly skipped: readonly SkippedTarget[];
  /** The path that would be sent, after a prefix rewrite. */
  readonly path: string;
  /** Request header changes, in order. */
  readonly requestHeaders: readonly HeaderChanges[];
  /** Response header changes, in order. */
  readonly responseHeaders: readonly HeaderChanges[];
  /** The balancer that would pick. */
  readonly balancer: string | undefined;
  /** The endpoints it would pick from. */
  readonly candidates: readonly CandidateEndpoint[];
  /** Timeouts in force, in ms: the route's request and idle timeouts, else the resolver's. */
  readonly timeouts: RouteTimeouts;
  /** The route's retry settings (carried out by the resilience layer). */
  readonly retry: RetryPlan;
  /** The route's traffic mirroring, if any. */
  readonly mirror: MirrorPolicy | undefined;
  /** The route's fault injection, if any. */
  readonly fault: FaultPolicy | undefined;
  /** Why the request would fail, when it would. */
  readonly error: ExplainedError | undefined;
}

/**
 * Routes a request without sending it, and says how. Waits for services the registry has not answered
 * for yet (up to the discovery timeout). Split sequences do not advance. @internal
 */
export async function explainRoute(service: string, request: RoutableRequest, stateOf: (service: string) => UpstreamView): Promise<RouteExplanation> {
  const view = new RequestView(request);
  // One wait for every service involved, as long as the discovery timeout.
  const wait = stateOf(service).discoveryWait(false);
  await stateOf(service).settle(wait);
  let decision: RouteDecision | undefined;
  let selection: Selection | undefined;
  let skipped: readonly { readonly target: RouteTarget; readonly reason: string }[] = [];
  let error: RouteExplanation["error"];
  let resolver: UpstreamView["routing"]["resolver"] | undefined;
  try {
    decision = decideRoute(service, view, (s) => stateOf(s).routing, false);
    resolver = stateOf(decision.target.service).routing.resolver;
    const outcome = await selectWaiting(decision, stateOf, wait);
    if (outcome.kind === "ready") {
      selection = outcome.selection;
      skipped = selection.skipped;
    } else {
      skipped = outcome.skipped;
      error = { code: outcome.error.code, message: outcome.error.message };
    }
  } catch (err) {
    if (!(err instanceof MeshError)) throw err;
    error = { code: err.code, message: err.message };
  }
  const destination = decision?.route?.config.destination;
  return {
    service,
    request: { method: view.method, path: view.rawPath },
    route: decision?.route === undefined ? undefined : { index: decision.route.index, match: decision.route.config.match },
    splits: decision?.splits ?? [],
    redirects: decision?.redirects ?? [],
    target: decision?.target,
    endpointsFrom: selection?.target,
    skipped,
    path: decision?.path ?? view.rawPath,
    requestHeaders: (decision?.requestHeaders ?? []).map((c) => c.source),
    responseHeaders: (decision?.responseHeaders ?? []).map((c) => c.source),
    balancer: selection?.state.policy,
    candidates: (selection?.targets ?? []).map((h) => ({ id: h.endpoint.id, address: h.endpoint.address, port: h.endpoint.port, weight: h.weight, health: h.endpoint.health })),
    timeouts: defined({
      requestTimeoutMs: destination?.requestTimeoutMs ?? resolver?.requestTimeoutMs,
      idleTimeoutMs: destination?.idleTimeoutMs,
      connectTimeoutMs: resolver?.connectTimeoutMs,
    }),
    retry: defined({
      numRetries: destination?.numRetries,
      retryOnConnectFailure: destination?.retryOnConnectFailure,
      retryOnStatusCodes: destination?.retryOnStatusCodes,
      retryOn: destination?.retryOn,
    }),
    mirror: decision?.route?.config.mirror,
    fault: decision?.route?.config.fault,
    error,
  };
}
