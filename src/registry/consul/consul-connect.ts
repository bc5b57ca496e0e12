import { EventEmitter } from "node:events";
import { request } from "undici";
import { MeshError } from "../../core/errors.ts";
import { assertServiceName } from "../../core/service-name.ts";
import { parseIdentity } from "../../security/identity.ts";
import { IdentityCell, type IdentitySource } from "../../security/identity-source.ts";
import type { AuthorizationDecision } from "../../security/authorization.ts";
import type { ConnectAuthority, IntentionSource } from "../../security/consul-authorizer.ts";
import { BlockingLoop } from "./blocking-loop.ts";
import { blockingGet, type AgentSettings } from "./blocking-get.ts";
import { ConsulCallError, parseAnswer, readAnswer, statusFailure, transportFailure } from "./consul-answer.ts";

/** A Connect leaf certificate, as `/v1/agent/connect/ca/leaf/:service` gives it. @internal */
export interface ConnectLeaf {
  readonly certPem: string;
  readonly keyPem: string;
  readonly serviceUri: string;
  readonly validBefore: string;
}

/** The Connect CA roots, as `/v1/agent/connect/ca/roots` gives them. @internal */
export interface ConnectRoots {
  readonly trustDomain: string | undefined;
  /** Every root (and its intermediates), PEM: the trust bundle, so certificates from a root being rotated in or out verify. */
  readonly pems: readonly string[];
}

const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** Decodes a leaf answer. @internal */
export function decodeLeaf(body: unknown): ConnectLeaf {
  const b = (body ?? {}) as Record<string, unknown>;
  const certPem = text(b.CertPEM);
  const keyPem = text(b.PrivateKeyPEM);
  if (certPem === undefined || keyPem === undefined) throw new Error("the leaf certificate answer has no CertPEM or PrivateKeyPEM");
  return { certPem, keyPem, serviceUri: text(b.ServiceURI) ?? "", validBefore: text(b.ValidBefore) ?? "" };
}

/** Decodes a roots answer. @internal */
export function decodeRoots(body: unknown): ConnectRoots {
  const b = (body ?? {}) as Record<string, unknown>;
  if (!Array.isArray(b.Roots)) throw new Error("the CA roots answer has no Roots list");
  const pems: string[] = [];
  for (const root of b.Roots as unknown[]) {
    const r = (root ?? {}) as Record<string, unknown>;
    const pem = text(r.RootCert);
    if (pem !== undefined) pems.push(pem);
    if (Array.isArray(r.IntermediateCerts)) for (const i of r.IntermediateCerts) if (typeof i === "string") pems.push(i);
  }
  if (pems.length === 0) throw new Error("the CA roots answer holds no RootCert");
  return { trustDomain: text(b.TrustDomain), pems };
}

/**
 * The identity of `service` from Consul Connect: its leaf certificate and the CA roots, each watched
 * with a blocking query (the agent answers a new leaf before the old one expires, and on root
 * rotation). Both must be known before the identity is. @internal
 */
export function connectIdentity(settings: AgentSettings, service: string): IdentitySource {
  assertServiceName(service);
  let leaf: ConnectLeaf | undefined;
  let roots: ConnectRoots | undefined;
  const loops: BlockingLoop[] = [];
  const cell = new IdentityCell(() => {
    for (const loop of loops) loop.stop();
    return Promise.resolve();
  });
  const update = (): void => {
    if (leaf === undefined || roots === undefined) return;
    try {
      cell.set(parseIdentity(leaf.certPem, leaf.keyPem, roots.pems, roots.trustDomain));
    } catch (err) {
      cell.fail(err as Error);
    }
  };
  const fail = (error: Error): void => cell.fail(new Error(`Consul at ${settings.url}: ${error.message}`, { cause: error }));
  loops.push(
    new BlockingLoop(`the Connect CA roots`, settings, (index, wait, cancel) => blockingGet(settings, "/v1/agent/connect/ca/roots", index, wait, cancel, false), (body) => {
      roots = decodeRoots(body);
      update();
    }, fail),
    new BlockingLoop(`the leaf certificate of '${service}'`, settings, (index, wait, cancel) => blockingGet(settings, `/v1/agent/connect/ca/leaf/${encodeURIComponent(service)}`, index, wait, cancel, false), (body) => {
      leaf = decodeLeaf(body);
      update();
    }, fail),
  );
  for (const loop of loops) loop.start();
  return cell;
}

/** Consul's authorize and the service-intentions entries. @internal */
export function connectAuthority(settings: AgentSettings): ConnectAuthority {
  const headers = (): Record<string, string> => ({ "content-type": "application/json", ...(settings.token === undefined ? {} : { "x-consul-token": settings.token }) });

  return {
    async authorize(target, clientCertUri, clientCertSerial): Promise<AuthorizationDecision> {
      // Every failure is a MeshError built from plain data (status, message): nothing in it reaches the
      // request, whose headers hold the ACL token.
      const failed = (reason: string): MeshError =>
        new MeshError("ERR_REGISTRY_UNAVAILABLE", `Consul at ${settings.url} could not authorize a caller of '${target}': ${reason}`, { details: { service: target } });
      let answer: { Authorized?: unknown; Reason?: unknown };
      try {
        const res = await request(`${settings.url}/v1/agent/connect/authorize`, {
          method: "POST",
          headers: headers(),
          body: JSON.stringify({ Target: target, ClientCertURI: clientCertUri, ClientCertSerial: clientCertSerial }),
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
          dispatcher: settings.connections.foreground,
        });
        const body = await readAnswer(res, settings, res.statusCode === 200);
        if (res.statusCode !== 200) throw statusFailure(res.statusCode, body, settings.token);
        answer = parseAnswer(body) ?? {};
      } catch (err) {
        const plain = err instanceof ConsulCallError ? err : transportFailure(err, settings.token);
        throw failed(plain.statusCode === undefined ? plain.message : `${plain.statusCode} ${plain.message}`);
      }
      return { allowed: answer.Authorized === true, reason: typeof answer.Reason === "string" ? `Consul: ${answer.Reason}` : "Consul authorize" };
    },
    async intentions(target): Promise<readonly IntentionSource[] | undefined> {
      const answer = await blockingGet(settings, `/v1/config/service-intentions/${encodeURIComponent(target)}`, 0, 0, new EventEmitter(), true, true);
      const sources = (answer.body as { Sources?: unknown } | undefined)?.Sources;
      return Array.isArray(sources) ? (sources as IntentionSource[]) : undefined;
    },
  };
}
