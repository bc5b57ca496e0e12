import type { IncomingHttpHeaders } from "node:http";
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from "node:tls";
import type { Identity } from "./identity.ts";
import { certificateSpiffeId, parseSpiffeId } from "./identity.ts";
import { identityWithin, type IdentitySource } from "./identity-source.ts";
import type { AuthorizationDecision, Authorizer, CallerIdentity } from "./authorization.ts";
import { deny, type InboundDeniedEvent } from "./inbound-denied.ts";
import { normalizeTarget, type EscapedSlashes, type NormalizedTarget, type PathNormalization } from "./path-normalization.ts";

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
  /** The path and query; the handler replaces it with the normalized path (same query) before the app sees it. */
  readonly url?: string | undefined;
  /** The headers. */
  readonly headers: IncomingHttpHeaders;
  /** The connection (a TLSSocket on an https or http2 secure server). */
  readonly socket: unknown;
}

/** The part of a response the helper writes: enough to send a 400, 403 or 503. */
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
  readonly #settings: InboundSettings;
  readonly #detach = new Set<() => void>();

  /** @internal */
  constructor(source: IdentitySource, authorize: Authorizer | undefined, settings: InboundSettings = DEFAULT_SETTINGS) {
    this.#source = source;
    this.#authorize = authorize;
    this.#settings = settings;
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
   * Authorizes a caller for a request, as {@link Inbound.handler} does: on the normalized path (a target
   * the handler would answer with 400 is refused). Unlike the handler it cannot hand the app the
   * normalized path: route on the same path it judged, or use the handler.
   *
   * @returns the decision; a caller without a SPIFFE ID is refused
   */
  async authorize(caller: CallerIdentity | undefined, request: { readonly method?: string | undefined; readonly url?: string | undefined; readonly headers: IncomingHttpHeaders }): Promise<AuthorizationDecision> {
    const target = this.#target(request.url ?? "/");
    if (!target.ok) return { allowed: false, reason: target.reason };
    return this.#decide(caller, (request.method ?? "GET").toUpperCase(), target.path + target.query, request.headers);
  }

  /**
   * Wraps a request listener: each request's target is normalized (see `pathNormalization` of
   * `mesh.inbound()`), its caller identified from its client certificate and authorized on the
   * normalized path, which the listener then finds in `req.url` (the query as received). A target the
   * mesh refuses gets 400, a refused caller 403, a failed authorizer 503, each with a fixed body that
   * says nothing about the server; the mesh's `inbound_denied` event carries the reason. The listener
   * never sees those requests. Read the caller in the listener with {@link callerIdentity}.
   */
  handler<Req extends InboundRequest, Res extends InboundResponse>(listener: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
    return (req, res) => {
      const caller = callerIdentity(req);
      const method = (req.method ?? "GET").toUpperCase();
      const url = req.url ?? "/";
      const target = this.#target(url);
      if (!target.ok) {
        this.#refuse(res, { status: 400, reason: target.reason, caller: caller?.spiffeId, method, path: receivedPath(url) });
        return;
      }
      const normalized = target.path + target.query;
      if (normalized !== url) {
        (req as { url?: string }).url = normalized;
        if (req.url !== normalized) {
          this.#refuse(res, { status: 400, reason: "the normalized path could not be handed to the app (req.url is read-only)", caller: caller?.spiffeId, method, path: target.path });
          return;
        }
      }
      this.#decide(caller, method, normalized, req.headers).then(
        (decision) => {
          if (decision.allowed) listener(req, res);
          else this.#refuse(res, { status: 403, reason: redactQuery(decision.reason, target.query), caller: caller?.spiffeId, method, path: target.path });
        },
        (err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          this.#refuse(res, { status: 503, reason: redactQuery(`the authorizer failed: ${error.message}`, target.query), caller: caller?.spiffeId, method, path: target.path, error });
        },
      );
    };
  }

  /** Stops following rotations for every attached server. */
  close(): void {
    for (const detach of [...this.#detach]) detach();
  }

  #target(url: string): NormalizedTarget {
    const target = normalizeTarget(url, this.#settings.escapedSlashes);
    if (target.ok && target.changed && this.#settings.pathNormalization === "reject") {
      return { ok: false, reason: `the path is not in normal form (normalized: ${target.path}), refused by pathNormalization: "reject"` };
    }
    return target;
  }

  async #decide(caller: CallerIdentity | undefined, method: string, path: string, headers: IncomingHttpHeaders): Promise<AuthorizationDecision> {
    if (caller === undefined) return { allowed: false, reason: "the caller presented no client certificate with a SPIFFE ID" };
    if (this.#authorize === undefined) return { allowed: true, reason: "no authorization configured: any caller with a trusted certificate" };
    return this.#authorize(caller, { method, path, headers });
  }

  #refuse(res: InboundResponse, event: InboundDeniedEvent): void {
    deny(res, event.status);
    this.#settings.report?.(event);
  }
}

/** How an {@link Inbound} treats paths, and where it reports what it refused. @internal */
export interface InboundSettings {
  /** Normalize non-normal paths (default) or refuse them. */
  readonly pathNormalization: PathNormalization;
  /** What `%2F` and `%5C` do. */
  readonly escapedSlashes: EscapedSlashes;
  /** Receives each request the handler answered itself. */
  readonly report?: (event: InboundDeniedEvent) => void;
}

const DEFAULT_SETTINGS: InboundSettings = { pathNormalization: "normalize", escapedSlashes: "keep" };

/** The reason with the query (which may carry secrets) taken out wherever the authorizer quoted it. */
function redactQuery(reason: string, query: string): string {
  return query.length > 1 ? reason.replaceAll(query, "?<query>") : reason;
}

/** The path part of a target as received (no query, no fragment), or undefined when it is not a path. */
function receivedPath(url: string): string | undefined {
  if (!url.startsWith("/")) return undefined;
  const end = url.search(/[?#]/);
  return end < 0 ? url : url.slice(0, end);
}

function optionsOf(identity: Identity): MtlsServerOptions {
  return { cert: identity.certPem, key: identity.keyPem, ca: [...identity.trustPems], requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" };
}
