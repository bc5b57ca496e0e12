/** Check status as Consul reports it. */
export type CheckStatus = "passing" | "warning" | "critical";

/** A node of the catalog, in Consul's JSON shape. */
export interface NodeRecord {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
}

/** A service instance, in the shape of `Service` in `/v1/health/service`. */
export interface ServiceRecord {
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  TaggedAddresses: Record<string, { address: string; port: number }>;
  Meta: Record<string, string>;
  Port: number;
  Weights: { Passing: number; Warning: number };
  /** Whether anti-entropy leaves the catalog's tags alone, as registered. */
  EnableTagOverride: boolean;
  Namespace: string;
  /** `connect-proxy` and the like; absent for a typical service. */
  Kind?: string;
  /** A proxy's configuration, as registered. */
  Proxy?: Record<string, unknown>;
  /** `Connect` as registered: `Native` for instances that serve mTLS themselves. */
  Connect?: { Native: boolean };
}

/** A health check, in Consul's JSON shape, plus what the fake needs to run TTLs. */
export interface CheckRecord {
  Node: string;
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  /** `ttl`, `http`, `tcp` and so on; empty for a check the catalog was given (and serfHealth). */
  Type: string;
  Namespace: string;
}

interface Instance {
  readonly node: string;
  readonly service: ServiceRecord;
  /** In the catalog only, not the agent's own (the `consul` service a server registers). */
  readonly catalogOnly: boolean;
}

/** A copy of `o` without one key. */
function without<T extends object, K extends keyof T>(o: T, key: K): Omit<T, K> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => k !== key)) as Omit<T, K>;
}

/** The key of a check: node and check ID. @internal */
export function checkKey(node: string, checkId: string): string {
  return `${node}\u0000${checkId}`;
}

/** One entry of `/v1/health/service/:name`. */
export interface HealthEntry {
  readonly Node: NodeRecord;
  readonly Service: Omit<ServiceRecord, "EnableTagOverride">;
  readonly Checks: Omit<CheckRecord, "Type">[];
}

/**
 * The catalog of a fake Consul: nodes, service instances and checks, with Raft-like indexes. Every
 * write raises the global index; each service remembers the index of its last change, which is what
 * `X-Consul-Index` reports for it. @internal
 */
export class ConsulState {
  readonly nodes = new Map<string, NodeRecord>();
  readonly #instances = new Map<string, Instance>();
  /** Checks by node and check ID: check IDs are unique per node, not across the catalog. */
  readonly checks = new Map<string, CheckRecord>();
  #index = 1;
  readonly #serviceIndex = new Map<string, number>();
  #catalogIndex = 1;

  /** The global index. */
  get index(): number {
    return this.#index;
  }

  /** Moves every index back to `to` (a restored snapshot). */
  rewind(to: number): void {
    this.#index = to;
    this.#catalogIndex = Math.min(this.#catalogIndex, to);
    for (const [name, index] of this.#serviceIndex) this.#serviceIndex.set(name, Math.min(index, to));
  }

  /** The index of the last change to a service (the catalog's for a service never seen). */
  serviceIndex(name: string): number {
    return this.#serviceIndex.get(name) ?? this.#catalogIndex;
  }

  /** The index of the last change to the list of services. */
  get catalogIndex(): number {
    return this.#catalogIndex;
  }

  /** Raises the global index for a write elsewhere (config entries, KV) and returns it. */
  bump(): number {
    return ++this.#index;
  }

  /** Raises the index of a service without changing it (churn). */
  touch(service: string): number {
    this.#index++;
    this.#serviceIndex.set(service, this.#index);
    return this.#index;
  }

  /** Adds or replaces a node. */
  putNode(node: NodeRecord): void {
    this.nodes.set(node.Node, node);
    this.#index++;
    for (const instance of this.#instances.values()) if (instance.node === node.Node) this.#serviceIndex.set(instance.service.Service, this.#index);
  }

  /** Adds or replaces a service instance on a node; its checks are replaced by `checks`. */
  putService(node: string, service: ServiceRecord, checks: readonly CheckRecord[], catalogOnly = false): void {
    const previous = this.#instances.get(service.ID);
    this.#index++;
    if (previous !== undefined) this.#serviceIndex.set(previous.service.Service, this.#index);
    for (const [id, check] of this.checks) if (check.ServiceID === service.ID) this.checks.delete(id);
    this.#instances.set(service.ID, { node, service, catalogOnly });
    for (const check of checks) this.checks.set(checkKey(check.Node, check.CheckID), check);
    this.#serviceIndex.set(service.Service, this.#index);
    this.#catalogIndex = this.#index;
  }

  /** Removes a service instance and its checks; false when there was none. */
  deleteService(id: string): boolean {
    const instance = this.#instances.get(id);
    if (instance === undefined) return false;
    this.#instances.delete(id);
    for (const [checkId, check] of this.checks) if (check.ServiceID === id) this.checks.delete(checkId);
    this.#index++;
    this.#serviceIndex.set(instance.service.Service, this.#index);
    this.#catalogIndex = this.#index;
    return true;
  }

  /** Adds or replaces one check; the services it is part of change. */
  putCheck(check: CheckRecord): void {
    this.checks.set(checkKey(check.Node, check.CheckID), check);
    this.#touchFor(check);
  }

  /** Removes one check; false when there is none. */
  deleteCheck(node: string, id: string): boolean {
    const check = this.checks.get(checkKey(node, id));
    if (check === undefined) return false;
    this.checks.delete(checkKey(node, id));
    this.#touchFor(check);
    return true;
  }

  /** Raises the index of the services a check belongs to (every service of its node for a node check). */
  #touchFor(check: CheckRecord): void {
    this.#index++;
    if (check.ServiceID === "") {
      for (const instance of this.#instances.values()) if (instance.node === check.Node) this.#serviceIndex.set(instance.service.Service, this.#index);
    } else {
      const instance = this.#instances.get(check.ServiceID);
      if (instance !== undefined) this.#serviceIndex.set(instance.service.Service, this.#index);
    }
  }

  /** Sets a check's status and output; false when there is no such check on that node. */
  setCheck(node: string, id: string, status: CheckStatus, output: string): boolean {
    const check = this.checks.get(checkKey(node, id));
    if (check === undefined) return false;
    // An update that changes nothing is not a change (agents do not sync unchanged TTL heartbeats).
    if (check.Status === status && check.Output === output) return true;
    check.Status = status;
    check.Output = output;
    this.#touchFor(check);
    return true;
  }

  /** Every instance, by service ID. */
  instances(): ReadonlyMap<string, Instance> {
    return this.#instances;
  }

  /** The entries of `/v1/health/service/:name`: node, service and all its checks (node-level included). */
  health(name: string): HealthEntry[] {
    const out: HealthEntry[] = [];
    for (const { node, service } of this.#instances.values()) {
      if (service.Service !== name) continue;
      const nodeRecord = this.nodes.get(node);
      if (nodeRecord === undefined) continue;
      const onNode = [...this.checks.values()].filter((c) => c.Node === node);
      // The service's own checks, then the node's (as in the documented sample).
      const checks = [...onNode.filter((c) => c.ServiceID === service.ID), ...onNode.filter((c) => c.ServiceID === "")].map((c) => without(c, "Type"));
      // Without EnableTagOverride and the checks' Type, as the documented sample of /v1/health/service shows it.
      out.push({ Node: nodeRecord, Service: without(service, "EnableTagOverride"), Checks: checks });
    }
    return out;
  }

  /** `{ name: [tags] }` for `/v1/catalog/services`. */
  services(): Record<string, string[]> {
    const out: Record<string, Set<string>> = {};
    for (const { service } of this.#instances.values()) {
      const tags = (out[service.Service] ??= new Set());
      for (const tag of service.Tags) tags.add(tag);
    }
    return Object.fromEntries(Object.entries(out).map(([name, tags]) => [name, [...tags]]));
  }

  /** Forgets everything (a restarted agent with no data). */
  clear(): void {
    this.nodes.clear();
    this.#instances.clear();
    this.checks.clear();
    this.#serviceIndex.clear();
    this.#index = 1;
    this.#catalogIndex = 1;
  }
}
