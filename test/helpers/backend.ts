import { EventEmitter, once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** What a test backend saw of one request. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

/**
 * A real HTTP server on 127.0.0.1, port 0. It answers every request with JSON describing it and an
 * `x-instance` header. Requests to `/hold` wait until `release()`; `/stream` sends its body in chunks.
 */
export class Backend {
  readonly name: string;
  readonly seen: SeenRequest[] = [];
  /** Emits `request` as each request arrives (before it is answered). */
  readonly events = new EventEmitter<{ request: [SeenRequest] }>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #held: (() => void)[] = [];
  #onHeld: (() => void) | undefined;
  #onSocketsClosed: (() => void) | undefined;
  port = 0;
  /** Connections accepted so far. */
  accepted = 0;
  /** Connections the client has ended or aborted (its FIN arrived), even while a response was pending. */
  clientEnded = 0;

  /** Time each response is held before it is sent, in ms: a slow instance. */
  delayMs = 0;

  /** When set, every request is answered with this status: a broken instance. */
  failWith: number | undefined;

  /** When set, every n-th request is answered with 503: an instance that fails often, but not in a row. */
  failEvery: number | undefined;

  /** With `failWith`: the error body is sent in two parts this many ms apart (a slow error answer). */
  dripMs = 0;

  /** When true, every connection is destroyed as soon as a request arrives: a reset before any response. */
  resetRequests = false;

  private constructor(name: string) {
    this.name = name;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => res.destroy(err as Error));
    });
    this.#server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      this.accepted++;
      socket.on("end", () => this.clientEnded++);
      socket.on("close", () => {
        this.#sockets.delete(socket);
        if (this.#sockets.size === 0) this.#onSocketsClosed?.();
      });
    });
  }

  static async start(name: string): Promise<Backend> {
    const backend = new Backend(name);
    backend.#server.listen(0, "127.0.0.1");
    await once(backend.#server, "listening");
    backend.port = (backend.#server.address() as AddressInfo).port;
    return backend;
  }

  get endpoint(): { readonly id: string; readonly address: string; readonly port: number } {
    return { id: this.name, address: "127.0.0.1", port: this.port };
  }

  get openSockets(): number {
    return this.#sockets.size;
  }

  /** Resolves once a request to /hold is being held. */
  waitForHeld(): Promise<void> {
    if (this.#held.length > 0) return Promise.resolve();
    return new Promise((resolve) => (this.#onHeld = resolve));
  }

  /** Lets every held request finish. */
  release(): void {
    for (const finish of this.#held.splice(0)) finish();
  }

  /** Resolves once every client connection to this backend has closed. */
  waitForSocketsClosed(): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#onSocketsClosed = resolve));
  }

  /** Back to a healthy, prompt instance with nothing seen: for the next test. */
  reset(): void {
    this.failWith = undefined;
    this.failEvery = undefined;
    this.resetRequests = false;
    this.delayMs = 0;
    this.dripMs = 0;
    this.release();
    this.seen.length = 0;
  }

  /**
   * Kills the instance as SIGKILL would: the listener closes and every connection is destroyed at once,
   * requests in flight (held or slow) get no answer.
   */
  async kill(): Promise<void> {
    this.#server.close();
    for (const socket of this.#sockets) socket.destroy();
    await once(this.#server, "close");
  }

  async close(): Promise<void> {
    this.release();
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close");
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const seen: SeenRequest = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString() };
    this.seen.push(seen);
    this.events.emit("request", seen);
    if (this.resetRequests) {
      req.socket.destroy();
      return;
    }
    if (req.url === "/hold") {
      await new Promise<void>((resolve) => {
        this.#held.push(resolve);
        this.#onHeld?.();
      });
    }
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    res.setHeader("x-instance", this.name);
    if (req.url?.startsWith("/redirect?to=") === true) {
      res.writeHead(302, { location: decodeURIComponent(req.url.slice("/redirect?to=".length)) });
      res.end();
      return;
    }
    if (req.url === "/stream") {
      res.writeHead(200, { "content-type": "text/plain" });
      for (let i = 0; i < 5; i++) res.write(`chunk-${i};`);
      res.end();
      return;
    }
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const every = this.failEvery !== undefined && this.seen.length % this.failEvery === 0 ? 503 : undefined;
    const status = this.failWith ?? every ?? (path.startsWith("/status/") ? Number(path.slice(8)) : 200);
    res.writeHead(status, { "content-type": "application/json", "x-echo-method": seen.method, ...(status === 429 ? { "retry-after": "1" } : {}) });
    if (this.dripMs > 0 && status >= 500) {
      res.write(" ");
      await new Promise((resolve) => setTimeout(resolve, this.dripMs));
    }
    res.end(JSON.stringify({ instance: this.name, ...seen }));
  }
}

/** Starts `n` backends named `<prefix>-0`, `<prefix>-1`, ... */
export function startBackends(n: number, prefix = "orders"): Promise<Backend[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => Backend.start(`${prefix}-${i}`)));
}

/** Requests the backends have seen, together (attempts, when they serve one service). */
export function totalSeen(backends: readonly Backend[]): number {
  return backends.reduce((n, b) => n + b.seen.length, 0);
}
