import { once } from "node:events";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { callerIdentity, type Inbound } from "proxyless";
import type { TestCertificate, TestCertificateAuthority } from "proxyless/testing";

/** A real mTLS server on 127.0.0.1, port 0: answers JSON with the caller's SPIFFE ID. */
export class TlsBackend {
  readonly name: string;
  readonly server: Server;
  port = 0;
  /** Requests that reached the handler. */
  requests = 0;
  /** Serial numbers of the client certificates of the connections made. */
  readonly clientSerials: string[] = [];
  /** Failed handshakes (a client refused by the server). */
  readonly handshakeErrors: Error[] = [];
  readonly #sockets = new Set<Socket>();

  private constructor(name: string, server: Server) {
    this.name = name;
    this.server = server;
    server.on("secureConnection", (socket: TLSSocket) => {
      this.clientSerials.push(socket.getPeerCertificate().serialNumber);
    });
    server.on("tlsClientError", (err: Error) => this.handshakeErrors.push(err));
    server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  /**
   * Starts a server with a leaf from `ca` (or the given one), trusting `trust` (default `ca`'s root).
   * With `inbound`, its handler authorizes callers.
   */
  static start(name: string, leaf: TestCertificate, trustPem: string | string[], inbound?: Inbound): Promise<TlsBackend> {
    return TlsBackend.startWith(name, { cert: leaf.certPem, key: leaf.keyPem, ca: trustPem, requestCert: true, rejectUnauthorized: true }, inbound);
  }

  /** Starts a server with the given TLS options (such as `await inbound.serverOptions()`). */
  static async startWith(name: string, options: import("node:https").ServerOptions, inbound?: Inbound): Promise<TlsBackend> {
    const counter = { backend: undefined as TlsBackend | undefined };
    const handle = (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): void => {
      if (counter.backend !== undefined) counter.backend.requests++;
      const caller = callerIdentity(req);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ instance: name, caller: caller?.spiffeId ?? null, service: caller?.service ?? null, path: req.url }));
    };
    const server = createServer(options, inbound === undefined ? handle : inbound.handler(handle));
    const backend = new TlsBackend(name, server);
    counter.backend = backend;
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    backend.port = (server.address() as AddressInfo).port;
    return backend;
  }

  endpoint(extra: { readonly tls?: boolean; readonly identity?: string } = {}): { readonly id: string; readonly address: string; readonly port: number; readonly tls?: boolean; readonly identity?: string } {
    return { id: this.name, address: "127.0.0.1", port: this.port, ...extra };
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.server.close();
    await once(this.server, "close");
  }
}

/** A leaf for `service` from `ca`, with its SPIFFE ID. */
export function leafFor(ca: TestCertificateAuthority, service: string, options: { readonly notBefore?: Date; readonly notAfter?: Date } = {}): Promise<TestCertificate> {
  return ca.issue({ uri: ca.spiffeId(service), ...options });
}
