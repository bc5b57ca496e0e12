import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** Answers one request to a scripted path. */
export type ScriptedAnswer = (res: ServerResponse, req: IncomingMessage) => void;

/**
 * A raw HTTP server on 127.0.0.1, port 0, that plays a Consul agent a test scripts answer by answer: a
 * hostile or broken one. `script(path, answer)` queues the next answer of a path; a request with none
 * queued blocks (as a blocking query does) until one is. Config entry kinds answer an empty list at
 * once to their first query (index 0) and then block forever; `/v1/catalog/services` answers `{}`.
 */
export class ScriptedConsul {
  readonly url: string;
  /** The requests seen, by path, with their headers. */
  readonly seen: { readonly path: string; readonly headers: IncomingMessage["headers"] }[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #queued = new Map<string, ScriptedAnswer[]>();
  readonly #waiting = new Map<string, [ServerResponse, IncomingMessage][]>();

  private constructor(server: Server) {
    this.#server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    server.on("request", (req, res) => this.#route(req, res));
  }

  /** Starts one. */
  static async start(): Promise<ScriptedConsul> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new ScriptedConsul(server);
  }

  /** Queues the next answer to `path` (answers a waiting request at once). */
  script(path: string, answer: ScriptedAnswer): void {
    const waiting = this.#waiting.get(path)?.shift();
    if (waiting !== undefined) answer(...waiting);
    else this.#queued.set(path, [...(this.#queued.get(path) ?? []), answer]);
  }

  /** Requests made to `path` so far. */
  count(path: string): number {
    return this.seen.filter((s) => s.path === path).length;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.seen.push({ path: url.pathname, headers: req.headers });
    const next = this.#queued.get(url.pathname)?.shift();
    if (next !== undefined) return next(res, req);
    if (url.pathname.startsWith("/v1/config/") && (url.searchParams.get("index") ?? "0") === "0") return json(res, [], 1);
    if (url.pathname === "/v1/catalog/services") return json(res, {}, 1);
    const waiting = this.#waiting.get(url.pathname) ?? [];
    const entry: [ServerResponse, IncomingMessage] = [res, req];
    waiting.push(entry);
    this.#waiting.set(url.pathname, waiting);
    // A client that gave up (or closed) is waiting no more.
    res.once("close", () => {
      const at = waiting.indexOf(entry);
      if (at !== -1) waiting.splice(at, 1);
    });
  }
}

/** Sends `body` as Consul does: JSON, with `X-Consul-Index`, and any extra headers. */
export function json(res: ServerResponse, body: unknown, index: number, headers: Record<string, string> = {}): void {
  res.writeHead(200, { "content-type": "application/json", "x-consul-index": String(index), ...headers });
  res.end(JSON.stringify(body));
}

/** One healthy instance of `service` at 127.0.0.1:`port`, as `/v1/health/service/:name` lists it. */
export function healthEntry(service: string, id: string, port: number): unknown {
  return {
    Node: { Node: "n1", Address: "127.0.0.1" },
    Service: { ID: id, Service: service, Address: "127.0.0.1", Port: port, Tags: [], Meta: {}, Weights: { Passing: 1, Warning: 1 } },
    Checks: [{ CheckID: `service:${id}`, Status: "passing", ServiceID: id, ServiceName: service }],
  };
}
