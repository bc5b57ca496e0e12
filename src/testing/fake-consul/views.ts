import type { CheckRecord, ConsulState, ServiceRecord } from "./consul-state.ts";

/** `GET /v1/catalog/service/:name`: one flat object per instance, node fields then `Service*` fields. @internal */
export function catalogService(state: ConsulState, name: string): Record<string, unknown>[] {
  const index = state.serviceIndex(name);
  const out: Record<string, unknown>[] = [];
  for (const { node, service } of state.instances().values()) {
    if (service.Service !== name) continue;
    const n = state.nodes.get(node);
    if (n === undefined) continue;
    out.push({
      ID: n.ID,
      Node: n.Node,
      Address: n.Address,
      Datacenter: n.Datacenter,
      TaggedAddresses: n.TaggedAddresses,
      NodeMeta: n.Meta,
      CreateIndex: index,
      ModifyIndex: index,
      ServiceAddress: service.Address,
      ServiceEnableTagOverride: service.EnableTagOverride,
      ServiceID: service.ID,
      ServiceName: service.Service,
      ServicePort: service.Port,
      ServiceMeta: service.Meta,
      ServiceTaggedAddresses: service.TaggedAddresses,
      ServiceTags: service.Tags,
      ServiceWeights: service.Weights,
      ServiceKind: "",
      ServiceProxy: { DestinationServiceName: "", DestinationServiceID: "", LocalServiceAddress: "", LocalServicePort: 0, Config: null, Upstreams: null },
      ServiceConnect: { Native: service.Connect?.Native === true, Proxy: null },
      Namespace: service.Namespace,
    });
  }
  return out;
}

/** An instance as the agent endpoints show it. @internal */
export function agentService(service: ServiceRecord, datacenter: string): Record<string, unknown> {
  const { Proxy: proxy, ...rest } = service;
  return { ...rest, Datacenter: datacenter, ...(proxy === undefined ? {} : { Proxy: proxy }) };
}

/** Consul's aggregate of checks: critical (or maintenance) wins, then warning, then passing. @internal */
export function aggregateStatus(checks: readonly CheckRecord[]): "passing" | "warning" | "critical" {
  if (checks.some((c) => c.Status === "critical")) return "critical";
  if (checks.some((c) => c.Status === "warning")) return "warning";
  return "passing";
}

/** `GET /v1/agent/health/service/id/:id`'s body: aggregate, service, checks. @internal */
export function agentHealth(state: ConsulState, node: string, service: ServiceRecord, datacenter: string): Record<string, unknown> {
  const checks = [...state.checks.values()].filter((c) => c.Node === node && c.ServiceID === service.ID);
  return {
    AggregatedStatus: aggregateStatus(checks),
    Service: { ...agentService(service, datacenter), SocketPath: "" },
    Checks: checks.map((c) => agentCheck(state, c)),
  };
}

/** A check as the agent endpoints show it (`/v1/agent/checks`, agent health). @internal */
export function agentCheck(state: ConsulState, check: CheckRecord): Record<string, unknown> {
  const index = check.ServiceID === "" ? state.index : state.serviceIndex(check.ServiceName);
  return { ...check, Interval: "", Timeout: "", ExposedPort: 0, Definition: {}, CreateIndex: index, ModifyIndex: index };
}

/** Whether a service has every one of `want` among its tags, compared as Consul does: without regard to case. @internal */
export function hasTags(tags: readonly string[], want: readonly string[]): boolean {
  return want.every((w) => tags.some((t) => t.toLowerCase() === w.toLowerCase()));
}

/** The HTTP status of an agent health answer: 200 passing, 429 warning, 503 critical. @internal */
export function healthStatusCode(status: "passing" | "warning" | "critical"): number {
  return status === "passing" ? 200 : status === "warning" ? 429 : 503;
}
