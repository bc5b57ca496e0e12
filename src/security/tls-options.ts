import { invalidConfig } from "../core/errors.ts";
import { describe, expectOptions } from "../core/validate.ts";
import type { IdentitySource } from "./identity-source.ts";

/** mTLS for the mesh's calls (and the identity its servers present). */
export interface MeshTlsOptions {
  /** Where the identity comes from: `fileIdentity(...)`, `consulRegistry.connectIdentity(service)`, or your own source. */
  readonly identity: IdentitySource;
  /**
   * `strict` (the default): every call is mTLS, and an endpoint known to speak plaintext only fails with
   * `ERR_TLS_REQUIRED`. `permissive`: plaintext endpoints get plaintext calls; the others mTLS.
   */
  readonly mode?: "strict" | "permissive";
  /**
   * The SPIFFE ID a target service's endpoints must present, with `{trustDomain}`, `{namespace}`,
   * `{datacenter}` and `{service}`. Default Consul's `spiffe://{trustDomain}/ns/{namespace}/dc/{datacenter}/svc/{service}`.
   * An endpoint's own `identity` (from the registry) takes precedence.
   */
  readonly spiffeTemplate?: string;
  /** The namespace in expected SPIFFE IDs and SNI. Default `default`. */
  readonly namespace?: string;
  /**
   * The datacenter in expected SPIFFE IDs and SNI. In SPIFFE IDs, left out means any datacenter (as
   * Consul's own proxies match); in SNI, `dc1`.
   */
  readonly datacenter?: string;
  /** The TLS server name (SNI) sent to a target, with the same placeholders. Default Consul's `{service}.{namespace}.{datacenter}.internal.{trustDomain}`. */
  readonly serverNameTemplate?: string;
}

/** Validated options, with the templates compiled. @internal */
export interface ResolvedTlsOptions {
  readonly identity: IdentitySource;
  readonly mode: "strict" | "permissive";
  /** The pattern a target's SPIFFE ID must match (anchored). */
  expectedIdentity(service: string, trustDomain: string | undefined): RegExp;
  /** The SNI for a target. */
  serverName(service: string, trustDomain: string | undefined): string;
}

const DEFAULT_SPIFFE = "spiffe://{trustDomain}/ns/{namespace}/dc/{datacenter}/svc/{service}";
const DEFAULT_SNI = "{service}.{namespace}.{datacenter}.internal.{trustDomain}";
const PLACEHOLDER = /\{(trustDomain|namespace|datacenter|service)\}/g;

/** A SPIFFE template with the literal text of its scheme and authority lower-cased (placeholders kept). */
function foldTemplateCase(template: string): string {
  const slash = template.indexOf("/", template.indexOf("://") + 3);
  const head = slash < 0 ? template : template.slice(0, slash);
  const folded = head.replace(/\{[A-Za-z]+\}|[^{]+/g, (part) => (part.startsWith("{") ? part : part.toLowerCase()));
  return slash < 0 ? folded : folded + template.slice(slash);
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Validates the `tls` option. @internal
 *
 * @throws MeshError `ERR_INVALID_CONFIG` naming the field at fault
 */
export function resolveTlsOptions(raw: unknown): ResolvedTlsOptions {
  const o = expectOptions(raw, "tls", ["identity", "mode", "spiffeTemplate", "namespace", "datacenter", "serverNameTemplate"]);
  const identity = o.identity as IdentitySource | undefined;
  if (identity === undefined || typeof identity.current !== "function" || typeof identity.subscribe !== "function" || typeof identity.ready !== "function") {
    throw invalidConfig("tls.identity", "expected an identity source: fileIdentity({ certFile, keyFile, caFile }) or consulRegistry.connectIdentity(service)");
  }
  if (o.mode !== undefined && o.mode !== "strict" && o.mode !== "permissive") throw invalidConfig("tls.mode", `expected "strict" or "permissive", got ${describe(o.mode)}`);
  const text = (key: string): string | undefined => {
    const v = o[key];
    if (v !== undefined && (typeof v !== "string" || v === "")) throw invalidConfig(`tls.${key}`, `expected a non-empty string, got ${describe(v)}`);
    return v;
  };
  const spiffeTemplate = text("spiffeTemplate") ?? DEFAULT_SPIFFE;
  if (!spiffeTemplate.startsWith("spiffe://") || !spiffeTemplate.includes("{service}")) throw invalidConfig("tls.spiffeTemplate", "expected a spiffe:// URI with a {service} placeholder");
  const namespace = text("namespace") ?? "default";
  const datacenter = text("datacenter");
  const serverNameTemplate = text("serverNameTemplate") ?? DEFAULT_SNI;
  const patterns = new Map<string, RegExp>();
  return {
    identity,
    mode: (o.mode) ?? "strict",
    expectedIdentity(service, trustDomain) {
      const key = `${service}|${trustDomain ?? ""}`;
      let re = patterns.get(key);
      if (re === undefined) {
        const values: Record<string, string | undefined> = { service, namespace, datacenter, trustDomain: trustDomain?.toLowerCase() };
        // Presented IDs are case-folded (scheme and trust domain lower case, path as written), so the
        // pattern is too, and matches case-sensitively: .../svc/ORDERS is not .../svc/orders.
        const source = foldTemplateCase(spiffeTemplate)
          .split(PLACEHOLDER)
          .map((part, i) => {
            if (i % 2 === 0) return escape(part);
            const value = values[part];
            // An unknown datacenter or trust domain matches any: one path segment, or one host.
            return value === undefined ? "[^/]+" : escape(value);
          })
          .join("");
        re = new RegExp(`^${source}$`);
        patterns.set(key, re);
      }
      return re;
    },
    serverName(service, trustDomain) {
      const values: Record<string, string> = { service, namespace, datacenter: datacenter ?? "dc1", trustDomain: trustDomain ?? "consul" };
      return serverNameTemplate.replace(PLACEHOLDER, (_m, name: string) => values[name] ?? "");
    },
  };
}
