import { createSecureContext, type PeerCertificate, type SecureContext } from "node:tls";
import { buildConnector } from "undici";
import { MeshError } from "../core/errors.ts";
import type { Endpoint } from "../endpoint/endpoint.ts";
import type { Identity } from "./identity.ts";
import { identityWithin, type IdentitySource } from "./identity-source.ts";
import { foldSpiffeCase, uriSans } from "./identity.ts";
import type { ResolvedTlsOptions } from "./tls-options.ts";

/** How the pool of one endpoint connects: its origin and connector, or why it may not be used. @internal */
export type EndpointTransport = { readonly origin: string; readonly connect: buildConnector.connector } | { readonly refusal: MeshError };

/** Node's codes for a peer certificate that does not verify, and what they mean. */
const VERIFY_CODES: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its certificate does not chain to the trust bundle",
  UNABLE_TO_GET_ISSUER_CERT: "its certificate does not chain to the trust bundle",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its certificate does not chain to the trust bundle",
  SELF_SIGNED_CERT_IN_CHAIN: "its certificate chains to a CA outside the trust bundle",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its certificate is self-signed",
  CERT_SIGNATURE_FAILURE: "its certificate's signature is invalid",
  CERT_UNTRUSTED: "its certificate is not trusted",
  CERT_REJECTED: "its certificate is rejected",
  CERT_HAS_EXPIRED: "its certificate has expired",
  CERT_NOT_YET_VALID: "its certificate is not valid yet",
};

/**
 * The mesh's outgoing mTLS: every endpoint pool connects with the current identity (certificate, key,
 * trust bundle), sets SNI, and checks that the peer's certificate carries the SPIFFE ID expected for
 * the target service (the identity check replaces the host name check, since endpoints are IP
 * addresses). After a rotation, new connections use the new identity; connections already open, and
 * the requests on them, carry on. @internal
 */
export class TransportSecurity {
  readonly #options: ResolvedTlsOptions;
  readonly #connectTimeout: number;
  #identity: Identity | undefined;
  #context: SecureContext | undefined;
  /** Connectors for the current identity, by expected peer identity. */
  #connectors = new Map<string, buildConnector.connector>();
  readonly #unsubscribe: () => void;

  constructor(options: ResolvedTlsOptions, connectTimeout: number) {
    this.#options = options;
    this.#connectTimeout = connectTimeout;
    this.#unsubscribe = options.identity.subscribe((update) => {
      if ("identity" in update) this.#use(update.identity);
    });
    const now = options.identity.current();
    if (now !== undefined) this.#use(now);
  }

  /** The identity source. */
  get source(): IdentitySource {
    return this.#options.identity;
  }

  #use(identity: Identity): void {
    if (identity === this.#identity) return;
    this.#identity = identity;
    this.#context = createSecureContext({ cert: identity.certPem, key: identity.keyPem, ca: [...identity.trustPems] });
    this.#connectors = new Map();
  }

  /** How long a connection may wait for the identity, and then to connect, in ms. */
  get connectTimeout(): number {
    return this.#connectTimeout;
  }

  /** The resolved `tls` options. */
  get options(): ResolvedTlsOptions {
    return this.#options;
  }

  /** The identity in use, once the source has one. */
  get identity(): Identity | undefined {
    return this.#identity;
  }

  /**
   * Checks a peer's certificate against the SPIFFE ID expected of an endpoint of `service` (for
   * transports that make their own TLS connections, such as grpc-js), as HTTP connections are checked:
   * the endpoint's own `identity` when the registry gave one, else the one `service`'s endpoints must
   * present. An `ERR_PEER_IDENTITY` error, or undefined when it fits.
   *
   * @param service - the service the connection is for
   * @param cert - the peer's certificate
   * @param endpointIdentity - the endpoint's own expected SPIFFE ID, if any
   */
  verifyPeer(service: string, cert: PeerCertificate, endpointIdentity?: string): MeshError | undefined {
    return this.#check(service, this.#expected(service, endpointIdentity, this.#identity?.trustDomain), cert);
  }

  /**
   * A failed TLS connection to an endpoint (for transports that make their own, such as grpc-js), said
   * as HTTP says it: `ERR_PEER_IDENTITY` when the peer's certificate is at fault (another CA, expired,
   * not yet valid); other errors as they are.
   *
   * @param err - the connection's error
   * @param service - the service the connection is for
   * @param endpointId - the endpoint's id
   * @param endpointIdentity - the endpoint's own expected SPIFFE ID, if any
   */
  connectError(err: Error, service: string, endpointId: string, endpointIdentity?: string): Error {
    return peerError(err, service, endpointId, this.#expected(service, endpointIdentity, this.#identity?.trustDomain).source);
  }

  /** The SPIFFE ID an endpoint must present: its own when the registry gave one, else its service's. */
  #expected(service: string, endpointIdentity: string | undefined, trustDomain: string | undefined): RegExp {
    return endpointIdentity === undefined ? this.#options.expectedIdentity(service, trustDomain) : exactly(endpointIdentity);
  }

  /** How an endpoint of `service` is reached. */
  transportFor(service: string, endpoint: Endpoint): EndpointTransport {
    if (endpoint.tls === false) {
      if (this.#options.mode === "permissive") return { origin: endpoint.origin, connect: plainConnector(this.#connectTimeout) };
      return {
        refusal: new MeshError(
          "ERR_TLS_REQUIRED",
          `Endpoint ${endpoint.id} of '${service}' speaks plaintext only and the mesh requires mTLS: nothing was sent. Make the service mTLS-capable (Consul: Connect native), or set tls.mode to "permissive" to allow plaintext endpoints.`,
          { details: { service, endpoint: endpoint.id } },
        ),
      };
    }
    const origin = `https://${endpoint.origin.slice("http://".length)}`;
    return { origin, connect: (opts, callback) => this.#connect(service, endpoint, opts, callback) };
  }

  #connect(service: string, endpoint: Endpoint, opts: buildConnector.Options, callback: buildConnector.Callback): void {
    if (this.#identity === undefined) {
      // The first connection waits for the identity (Consul may still be issuing the leaf), up to the connect timeout.
      // Not unref'd: a pending call waits on this connection.
      identityWithin(this.#options.identity, this.#connectTimeout, true).then(
        (identity) => {
          this.#use(identity);
          this.#connect(service, endpoint, opts, callback);
        },
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
      );
      return;
    }
    const identity = this.#identity;
    const expected = this.#expected(service, endpoint.identity, identity.trustDomain);
    let connector = this.#connectors.get(expected.source);
    if (connector === undefined) {
      connector = buildConnector({
        secureContext: this.#context as SecureContext,
        rejectUnauthorized: true,
        timeout: this.#connectTimeout,
        checkServerIdentity: (_host: string, cert: PeerCertificate) => this.#check(service, expected, cert),
      });
      this.#connectors.set(expected.source, connector);
    }
    const servername = this.#options.serverName(service, identity.trustDomain);
    connector({ ...opts, servername }, (...args: [null, unknown] | [Error, null]) => {
      const [err, socket] = args;
      if (err === null) {
        (callback as (e: null, s: unknown) => void)(null, socket);
        return;
      }
      callback(peerError(err, service, endpoint.id, expected.source), null);
    });
  }

  #check(service: string, expected: RegExp, cert: PeerCertificate): MeshError | undefined {
    const presented = uriSans(cert.subjectaltname);
    if (presented.some((uri) => expected.test(foldSpiffeCase(uri)))) return undefined;
    return new MeshError(
      "ERR_PEER_IDENTITY",
      `The peer for '${service}' presented ${presented.length === 0 ? "no SPIFFE ID" : presented.join(", ")}, not the identity expected of '${service}' (${expected.source}): refused before sending anything. A wrong instance is registered under '${service}', or tls.spiffeTemplate does not fit your SPIFFE IDs.`,
      { details: { service, expected: expected.source, presented, reason: "wrong-identity" } },
    );
  }

  /** Stops following the identity source (the source itself is the caller's to close). */
  close(): void {
    this.#unsubscribe();
  }
}

const exactPatterns = new Map<string, RegExp>();

/** A pattern matching one SPIFFE ID exactly, as case-folded by {@link foldSpiffeCase}: the scheme and trust domain case-insensitively, the path case-sensitively. */
function exactly(id: string): RegExp {
  let re = exactPatterns.get(id);
  if (re === undefined) {
    re = new RegExp(`^${foldSpiffeCase(id).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
    if (exactPatterns.size < 10_000) exactPatterns.set(id, re);
  }
  return re;
}

/** A connector for plaintext endpoints in permissive mode. */
function plainConnector(timeout: number): buildConnector.connector {
  return buildConnector({ timeout });
}

/** A TLS failure as `ERR_PEER_IDENTITY` when the peer's certificate is at fault; other errors as they are. */
function peerError(err: Error, service: string, endpointId: string, expected: string): Error {
  if (err instanceof MeshError) return err;
  const code = (err as { code?: unknown }).code;
  const why = typeof code === "string" ? VERIFY_CODES[code] : undefined;
  if (why === undefined) return err;
  return new MeshError("ERR_PEER_IDENTITY", `Endpoint ${endpointId} of '${service}' was refused: ${why} (${String(code)}). Nothing was sent.`, {
    cause: err,
    details: { service, endpoint: endpointId, expected, reason: code === "CERT_HAS_EXPIRED" ? "expired" : code === "CERT_NOT_YET_VALID" ? "not-yet-valid" : "untrusted" },
  });
}
