import { TLSSocket, type PeerCertificate } from "node:tls";
import type { Socket } from "node:net";
import { ChannelCredentials, experimental, type CallCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { MeshError } from "../../core/errors.ts";

/** The subchannel option naming the service a connection is for (set by the balancer on each subchannel). @internal */
export const PEER_SERVICE_OPTION = "proxyless.peer_service";
/** The subchannel option naming the endpoint a connection is for. @internal */
export const PEER_ENDPOINT_OPTION = "proxyless.peer_endpoint";
/** The subchannel option holding the SPIFFE ID the registry gave the endpoint, when it gave one. @internal */
export const PEER_IDENTITY_OPTION = "proxyless.peer_identity";

/** The options above: the balancer sets them itself, whatever a channel's own options say. @internal */
export const PEER_OPTIONS: readonly string[] = [PEER_SERVICE_OPTION, PEER_ENDPOINT_OPTION, PEER_IDENTITY_OPTION];

/** What the credentials ask of the mesh about a connection's peer. @internal */
export interface PeerChecks {
  /**
   * An error when the peer's certificate does not carry the SPIFFE ID expected of the endpoint (its
   * own `identity` when the registry gave one, else its service's); undefined when it fits.
   */
  verify(service: string, endpointIdentity: string | undefined, cert: PeerCertificate): MeshError | undefined;
  /** A failed handshake as the mesh says it (a certificate from another CA, expired: `ERR_PEER_IDENTITY`). */
  explain(err: Error, service: string, endpointId: string, endpointIdentity: string | undefined): Error;
  /** Told of each connection refused for its peer, before grpc-js hears of it. */
  refused(error: MeshError): void;
}

type CertificateProvider = experimental.CertificateProvider;

/**
 * The channel credentials of a mesh's gRPC calls: mTLS with the mesh's identity (grpc-js's
 * certificate-provider credentials, so rotation reaches new connections), and a check of each
 * connection's peer against the endpoint its subchannel is for. grpc-js makes one connector per
 * subchannel with the subchannel's options; the balancer puts the endpoint's service and identity in
 * them, so the check is per endpoint, as HTTP's is (grpc-js's xDS credentials take their SAN matchers
 * the same way). The check runs when the TLS handshake is done and before grpc-js has the socket: a
 * refused peer gets no byte of HTTP/2, let alone of a request. @internal
 */
export class PeerCheckingCredentials extends ChannelCredentials {
  readonly #inner: ChannelCredentials;
  readonly #checks: PeerChecks;

  /**
   * @param certificates - the mesh's identity and trust bundle as a grpc-js certificate provider
   * @param checks - the identity check, and what to make of failures
   */
  constructor(certificates: CertificateProvider, checks: PeerChecks) {
    super();
    // The chain is checked here (the trust bundle); the name check is ours, on SPIFFE IDs, in connect().
    this.#inner = experimental.createCertificateProviderChannelCredentials(certificates, certificates, { rejectUnauthorized: true, checkServerIdentity: () => undefined });
    this.#checks = checks;
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(channelTarget: experimental.GrpcUri, options: ChannelOptions, callCredentials?: CallCredentials): experimental.SecureConnector {
    const inner = this.#inner._createSecureConnector(channelTarget, options, callCredentials);
    const service = text(options[PEER_SERVICE_OPTION]);
    const endpoint = text(options[PEER_ENDPOINT_OPTION]);
    const identity = text(options[PEER_IDENTITY_OPTION]);
    const checks = this.#checks;
    const refuse = (error: Error): never => {
      if (error instanceof MeshError) checks.refused(error);
      throw error;
    };
    return {
      async connect(socket: Socket): Promise<experimental.SecureConnectResult> {
        if (service === undefined) {
          return refuse(
            new MeshError("ERR_PEER_IDENTITY", "A TLS connection with the mesh's credentials was not made by the mesh's balancer, so nobody knows whom it is for: refused. Use them with grpc.target() targets only.", {
              details: { reason: "not-the-mesh" },
            }),
          );
        }
        let result: experimental.SecureConnectResult;
        try {
          result = await inner.connect(socket);
        } catch (err) {
          return refuse(err instanceof Error ? checks.explain(err, service, endpoint ?? "", identity) : new Error(String(err)));
        }
        const peer = result.socket;
        const error = peer instanceof TLSSocket ? checks.verify(service, identity, peer.getPeerCertificate()) : notTls(service);
        if (error === undefined) return result;
        peer.destroy();
        return refuse(error);
      },
      waitForReady: () => inner.waitForReady(),
      getCallCredentials: () => inner.getCallCredentials(),
      destroy: () => inner.destroy(),
    };
  }
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function notTls(service: string): MeshError {
  return new MeshError("ERR_PEER_IDENTITY", `The connection for '${service}' is not TLS, so its peer's identity cannot be checked: refused.`, { details: { service, reason: "not-tls" } });
}
