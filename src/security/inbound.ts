import type { IncomingHttpHeaders } from "node:http";
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from "node:tls";
import type { Identity } from "./identity.ts";
import { certificateSpiffeId, parseSpiffeId } from "./identity.ts";
import { identityWithin, type IdentitySource } from "./identity-source.ts";
import type { AuthorizationDecision, Authorizer, CallerIdentity } from "./authorization.ts";

/** The TLS options of an mTLS server: the identity, and client certificates required and verified. */
export interface MtlsServerOptions extends SecureContextOptions {
  /** Always true: a client must present a certificate. */
  readonly requestCert: true;
  /** Always true: a client certificate that does not chain to the trust bundle is refused in the handshake. */
  readonly rejectUnauthorized: true;
}

/** The part of a request the helper reads (node:https's and node:http2's compatibility request both fit). */
export interface InboundRequest {
  /** The method. */
  readonly method?: string | undefined;
  /** The path and query. */
  readonly url?: string | undefined;
  /** The headers. */
  readonly headers: IncomingHttpHeaders;
  /** The connection (a TLSSocket on an https or http2 secure server). */
  readonly socket: unknown;
}

/** The part of a response the helper writes: enough to send a 403. */
export interface InboundResponse {
  /** Sends the status and headers. */
  writeHead(status: number, headers: Record<string, string>): unknown;
  /** Ends the response with a body. */
  end(body: string): unknown;
}

const callers = new WeakMap<object, CallerIdentity | null>();

/**
 * The caller's identity, read from its verified client certificate: its SPIFFE ID and, for Consul's
 * layout, the service, namespace, partition and datacenter. Undefined without a client certificate or
 * SPIFFE ID, with several SPIFFE IDs, or with one the SPIFFE spec does not allow.
 *
 * @param req - a request on an mTLS server (node:https, or node:http2's compatibility API)
 *
 * @example
 * ```ts
 * const caller = callerIdentity(req); // { service: "web", spiffeId: "spiffe://.../svc/web", ... }
 * ```
 */
export function callerIdentity(req: InboundRequest): CallerIdentity | undefined {
  const socket = req.socket as (Partial<TLSSocket> & object) | null | undefined;
  if (socket === null || socket === undefined || typeof socket.getPeerCertificate !== "function") return undefined;
  const known = callers.get(socket);
  if (known !== undefined) return known ?? undefined;
  const cert = socket.getPeerCertificate();
  const spiffeId = certificateSpiffeId(cert.subjectaltname);
  const parts = spiffeId === undefined || socket.authorized !== true ? undefined : parseSpiffeId(spiffeId);
  const caller = parts === undefined || spiffeId === undefined ? undefined : { ...parts, spiffeId, serialNumber: cert.serialNumber };
  callers.set(socket, caller ?? null);
  return caller;
}

/**
 * Serving mTLS: the identity for a `node:https` or `node:http2` secure server, kept current through
 * rotations, and a request handler wrapper that reads the caller's SPIFFE ID and authorizes it (with
 * Consul's intentions or a local policy). Get one from `mesh.inbound()`.
 *
 * @example
 * ```ts
 * const inbound = mesh.inbound({ authorize: "consul" });
 * const server = https.createServer(await inbound.serverOptions(), inbound.handler((req, res) => {
 *   res.end(`hello ${callerIdentity(req)?.service}`);
 * }));
 * inbound.attach(server);
 * ```
 */
export class Inbound {
  readonly #source: IdentitySource;
  readonly #authorize: Authorizer | undefined;
  readonly #detach = new Set<() => void>();

  /** @internal */
  constructor(source: IdentitySource, authorize: Authorizer | undefined) {
    this.#source = source;
    this.#authorize = authorize;
  }

  /**
   * The server's TLS options from the current identity (waiting for the first one): certificate, key,
   * trust bundle, and client certificates required and verified.
   *
   * @param timeoutMs - how long to wait for the first identity; default 10000
   * @throws MeshError `ERR_IDENTITY_UNAVAILABLE` when none comes in time
   */
  async serverOptions(timeoutMs = 10_000): Promise<MtlsServerOptions> {
    const now = this.#source.current();
    const identity = now ?? (await identityWithin(this.#source, timeoutMs, true));
    return optionsOf(identity);
  }

  /**
   * Keeps a server's certificate and trust bundle current: on each rotation, `server.setSecureContext`
   * with the new identity. New connections get it; open ones carry on.
   *
   * @returns a function that stops following rotations (also done when the server closes)
   */
  attach(server: TlsServer): () => void {
    const unsubscribe = this.#source.subscribe((update) => {
      if ("identity" in update) server.setSecureContext(optionsOf(update.identity));
    });
    const detach = (): void => {
      unsubscribe();
      this.#detach.delete(detach);
    };
    this.#detach.add(detach);
    server.once("close", detach);
    return detach;
  }

  /**
   * Authorizes a caller for a request, as {@link Inbound.handler} does.
   *
   * @returns the decision; a caller without a SPIFFE ID is refused
   */
  async authorize(caller: CallerIdentity | undefined, request: { readonly method?: string | undefined; readonly url?: string | undefined; readonly headers: IncomingHttpHeaders }): Promise<AuthorizationDecision> {
    if (caller === undefined) return { allowed: false, reason: "the caller presented no client certificate with a SPIFFE ID" };
    if (this.#authorize === undefined) return { allowed: true, reason: "no authorization configured: any caller with a trusted certificate" };
    return this.#authorize(caller, { method: (request.method ?? "GET").toUpperCase(), path: request.url ?? "/", headers: request.headers });
  }

  /**
   * Wraps a request listener: each request's caller is identified from its client certificate and
   * authorized; a refused caller gets 403 with the reason, and the listener never sees it. Read the
   * caller in the listener with {@link callerIdentity}.
   */
  handler<Req extends InboundRequest, Res extends InboundResponse>(listener: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
    return (req, res) => {
      const caller = callerIdentity(req);
      this.authorize(caller, req).then(
        (decision) => {
          if (decision.allowed) listener(req, res);
          else forbid(res, decision.reason);
        },
        (err: unknown) => forbid(res, `authorization failed: ${(err as Error).message}`, 503),
      );
    };
  }

  /** Stops following rotations for every attached server. */
  close(): void {
    for (const detach of [...this.#detach]) detach();
  }
}

function forbid(res: InboundResponse, reason: string, status = 403): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-proxyless-denied": "1" });
  res.end(`${status === 403 ? "Forbidden" : "Service Unavailable"}: ${reason}\n`);
}

function optionsOf(identity: Identity): MtlsServerOptions {
  return { cert: identity.certPem, key: identity.keyPem, ca: [...identity.trustPems], requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" };
}
