import type { UpstreamView } from "./upstream/upstream-view.ts";
import type { ServiceGaugeReading } from "./telemetry/instruments.ts";
import type { EndpointSnapshot, ServiceSnapshot } from "./telemetry/snapshot.ts";

const CONFIG_PARTS = ["loadBalancer", "router", "splitter", "resolver", "defaults"] as const;

/**
 * The snapshot of one service, for `mesh.snapshot()`. It reads the service's state, so it sits above
 * the telemetry floor that owns the snapshot's types. @internal
 */
export function serviceSnapshot(state: UpstreamView): ServiceSnapshot {
  const now = state.env.clock.now();
  const registry = state.registryStatus;
  const guard = state.guard;
  const outlier = guard.outlier;
  const inRotation = new Set(state.targets);
  const config = state.config;
  const endpoints: EndpointSnapshot[] = [];
  for (const handle of state.handles) {
    const e = handle.endpoint;
    const record = outlier?.status(e.id);
    const ejected = record !== undefined && record.ejectedUntil > now;
    const picked = inRotation.has(handle);
    endpoints.push({
      id: e.id,
      address: e.address,
      port: e.port,
      health: e.health,
      weight: picked ? handle.weight : 0,
      inRotation: picked,
      ejected,
      ejectedForMs: ejected ? Math.round(record.ejectedUntil - now) : null,
      ejections: record?.ejections ?? 0,
      pending: handle.load.pending,
      rttMs: handle.load.samples === 0 ? null : round(handle.load.rtt(now, 0)),
      attempts: handle.load.samples,
      failures: handle.load.failures,
      connections: handle.connections,
      zone: e.zone ?? null,
      tls: e.tls ?? null,
    });
  }
  return {
    name: state.service,
    status: state.status,
    policy: state.policy,
    panic: state.panic,
    config: {
      version: registry.configVersion,
      source: registry.configVersion > 0 ? "registry" : "defaults",
      ageMs: registry.configAt === undefined ? null : Math.round(now - registry.configAt),
      parts: CONFIG_PARTS.filter((part) => config[part] !== undefined),
    },
    registry: {
      lastUpdateAgeMs: registry.lastUpdateAt === undefined ? null : Math.round(now - registry.lastUpdateAt),
      failing: registry.failing,
      stalenessMs: Math.round(registry.stalenessMs),
      lastError: registry.lastError?.message ?? null,
    },
    breaker: guard.breaker?.state ?? null,
    budget: guard.budget.reading(),
    openConnections: state.openConnections,
    mirrorsInFlight: state.mirrorsInFlight,
    endpoints,
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The gauge reading of one service, for the mesh telemetry's gauges (read the same way). @internal */
export function gaugeReading(state: UpstreamView): ServiceGaugeReading {
  const endpoints = { passing: 0, warning: 0, critical: 0, ejected: 0 };
  const outlier = state.guard.outlier;
  for (const endpoint of state.endpoints?.all ?? []) {
    if (outlier?.isEjected(endpoint.id) === true) endpoints.ejected++;
    else endpoints[endpoint.health]++;
  }
  return { service: state.service, breaker: state.guard.breaker?.state, endpoints, stalenessMs: state.registryStatus.stalenessMs, connections: state.openConnections };
}
