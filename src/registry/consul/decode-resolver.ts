import type { LoadBalancerConfig, ServiceConfig } from "../service-config.ts";
import { ConsulDecodeError } from "./decode-health.ts";

type Json = Record<string, unknown>;
const record = (v: unknown): Json | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : undefined);

/**
 * Turns a `service-resolver` config entry (or its absence) into the service's config. So far its
 * `LoadBalancer`: `Policy` names the balancer, `LeastRequestConfig.ChoiceCount`,
 * `RingHashConfig.MinimumRingSize`/`MaximumRingSize` and `HashPolicies` (header, cookie, query
 * parameter; `SourceIP` is skipped: in-process, every request has this process's address) carry over.
 * The mesh validates the result: a policy or setting it cannot use is refused with `config_rejected` and
 * the previous config keeps serving.
 *
 * @param entry - the entry's JSON, undefined when the service has none
 * @throws ConsulDecodeError when the entry is not an object
 */
export function decodeResolver(entry: unknown): ServiceConfig {
  if (entry === undefined) return {};
  const e = record(entry);
  if (e === undefined) throw new ConsulDecodeError("a service-resolver entry must be an object");
  const lb = record(e.LoadBalancer);
  const policy = typeof lb?.Policy === "string" ? lb.Policy : "";
  if (lb === undefined || policy === "") return {};
  const config: Json = {};
  const choiceCount = record(lb.LeastRequestConfig)?.ChoiceCount;
  if (policy === "least_request" && choiceCount !== undefined) config.choiceCount = choiceCount;
  const ring = record(lb.RingHashConfig);
  if (policy === "ring_hash" && ring?.MinimumRingSize !== undefined) config.minimumRingSize = ring.MinimumRingSize;
  if (policy === "ring_hash" && ring?.MaximumRingSize !== undefined) config.maximumRingSize = ring.MaximumRingSize;
  if ((policy === "ring_hash" || policy === "maglev") && Array.isArray(lb.HashPolicies)) {
    config.hashPolicies = lb.HashPolicies.map(record)
      .filter((p): p is Json => p !== undefined && p.SourceIP !== true)
      .map((p) => ({ field: p.Field, name: p.FieldValue, ...(p.Terminal === undefined ? {} : { terminal: p.Terminal }) }));
  }
  const loadBalancer: LoadBalancerConfig = Object.keys(config).length === 0 ? { policy } : { policy, config };
  return { loadBalancer };
}
