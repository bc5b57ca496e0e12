import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MeshError } from "../core/errors.ts";
import { headersFromLines } from "../core/headers.ts";
import { invalidArgument } from "../core/request-arguments.ts";
import { describe } from "../core/validate.ts";
import type { Mesh } from "../mesh.ts";
import { AdminAccess, isLoopbackHost } from "./admin-access.ts";
import { adminJson } from "./admin-json.ts";
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from "./dashboard-page.ts";
import { EventRing } from "./event-ring.ts";

/** Options for {@link startAdmin}. */
export interface AdminOptions {
  /** The port to listen on; 0 picks a free one (see {@link AdminServer.url}). Default 9901, as Envoy's admin. */
  readonly port?: number;
  /**
   * The address to listen on. Default `127.0.0.1`: only this machine can read it. Any other address
   * needs a `token`, since the mesh's state (endpoints, config, errors) would be open to the network.
   */
  readonly host?: string;
  /** A bearer token every request must send (`Authorization: Bearer <token>`); at least 16 characters. */
  readonly token?: string;
  /** How many recent events the feed keeps (default 500, at most 10,000). */
  readonly events?: number;
}

/** A running admin server. */
export interface AdminServer {
  /** Its base URL, such as `http://127.0.0.1:9901`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Stops it: no new connections, open ones closed, the event feed unsubscribed. Idempotent. */
  close(): Promise<void>;
  /** `await using admin = await startAdmin(mesh)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The page's policy: its own scripts, styles and JSON only; no frames, no forms elsewhere. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Asset {
  readonly type: string;
  readonly body: string;
}

const PAGE: Asset = { type: "text/html; charset=utf-8", body: DASHBOARD_HTML };
const OWN_ASSETS: Readonly<Record<string, Asset>> = {
  "dashboard.js": { type: "text/javascript; charset=utf-8", body: DASHBOARD_JS },
  "dashboard.css": { type: "text/css; charset=utf-8", body: DASHBOARD_CSS },
};
/** uPlot's files, read from the installed package once, when first asked for. */
const UPLOT_FILES: Readonly<Record<string, { readonly file: string; readonly type: string }>> = {
  "uPlot.iife.min.js": { file: "uplot/dist/uPlot.iife.min.js", type: "text/javascript; charset=utf-8" },
  "uPlot.min.css": { file: "uplot/dist/uPlot.min.css", type: "text/css; charset=utf-8" },
};
const uplot = new Map<string, Promise<Asset>>();
/** The paths of the page's files: the only ones besides `/` that need no token. */
const OPEN_ASSETS: ReadonlySet<string> = new Set([...Object.keys(OWN_ASSETS), ...Object.keys(UPLOT_FILES)].map((name) => `/assets/${name}`));

/** A file the page loads, or undefined for a name that is none. */
function assetOf(name: string): Promise<Asset | undefined> | Asset | undefined {
  // Own names only: `__proto__` or `constructor` is no file.
  if (Object.hasOwn(OWN_ASSETS, name)) return OWN_ASSETS[name];
  const file = Object.hasOwn(UPLOT_FILES, name) ? UPLOT_FILES[name] : undefined;
  if (file === undefined) return undefined;
  let loading = uplot.get(name);
  if (loading === undefined) {
    loading = readFile(createRequire(import.meta.url).resolve(file.file), "utf8").then((body) => ({ type: file.type, body }));
    loading.catch(() => uplot.delete(name));
    uplot.set(name, loading);
  }
  return loading;
}

/** The JSON endpoints, for the index and the docs. */
const ENDPOINTS = {
  "/": "the live page (open it in a browser; with a token, as /#token=TOKEN)",
  "/api/snapshot": "the mesh's live state: every upstream service, its endpoints, breaker, config version",
  "/api/config": "the config in force per service (with ?service=NAME, one service)",
  "/api/explain": "where a request would go and why: ?service=NAME&method=GET&path=/v1/x&header=name:value (repeatable)",
  "/api/events": "recent events, oldest first (?since=SEQ for only newer ones, ?limit=N for at most N, default 500)",
} as const;

/** HTTP statuses for the MeshErrors an answer can meet; any other is 400. */
const STATUS_OF: Readonly<Partial<Record<string, number>>> = { ERR_UNKNOWN_SERVICE: 404, ERR_MESH_CLOSED: 503 };

const DEFAULT_PORT = 9901;
const DEFAULT_EVENTS = 500;
const MAX_EVENTS = 10_000;
const MIN_TOKEN_LENGTH = 16;
/** What a token may hold: visible ASCII (it travels in a header). */
const TOKEN = /^[\x21-\x7e]+$/;

/**
 * Starts the mesh's admin server: read-only JSON over HTTP for operators (and the CLI's `status`).
 * It listens on loopback unless told otherwise, and costs the request path nothing while nobody reads
 * it (the event feed listens to the mesh's events, not its requests).
 *
 * @param mesh - the mesh to show
 * @param options - where to listen, a bearer token, the feed's length
 * @returns the running server, once it listens
 * @throws MeshError `ERR_INVALID_ARGUMENT` for bad options (a non-loopback host with no token, a short
 *   token, a port out of range) or when the port cannot be bound
 *
 * @example
 * ```ts
 * import { startAdmin } from "proxyless/admin";
 * const admin = await startAdmin(mesh, { port: 0 });
 * console.log(`${admin.url}/api/snapshot`);
 * await admin.close();
 * ```
 */
export async function startAdmin(mesh: Mesh, options: AdminOptions = {}): Promise<AdminServer> {
  const settings = readOptions(options);
  const access = new AdminAccess(settings.token);
  const ring = new EventRing(mesh, settings.events);
  const server = createServer((req, res) => {
    void answer(mesh, ring, access, req, res);
  });
  server.on("clientError", (err, socket) => {
    const tooLarge = (err as { code?: unknown }).code === "HPE_HEADER_OVERFLOW";
    if (socket.writable) socket.end(`HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify({ error: { code: tooLarge ? "HEADERS_TOO_LARGE" : "BAD_REQUEST", message: "The request could not be read as HTTP." } })}`);
    else socket.destroy();
  });
  // Listened for only until it listens: a later error must not reject a promise nobody waits on.
  const listening = new AbortController();
  try {
    // Exclusive: in a node:cluster worker, its own port rather than one shared by every worker's mesh.
    server.listen({ port: settings.port, host: settings.host.replace(/^\[(.*)\]$/, "$1"), exclusive: true });
    await Promise.race([once(server, "listening", { signal: listening.signal }), once(server, "error", { signal: listening.signal }).then(([err]) => Promise.reject(err as Error))]);
    listening.abort();
  } catch (err) {
    listening.abort();
    ring.close();
    const code = (err as { code?: unknown }).code;
    throw invalidArgument(`The admin server could not listen on ${settings.host}:${String(settings.port)}${typeof code === "string" ? ` (${code})` : ""}: pick another port, or port 0 for any free one`, err);
  }
  // A forgotten admin server does not keep a process alive that has otherwise finished.
  server.unref();
  const { port } = server.address() as AddressInfo;
  const bare = settings.host.replace(/^\[(.*)\]$/, "$1");
  const host = bare.includes(":") ? `[${bare}]` : bare;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= stop(server, ring));
  return { url: `http://${host}:${String(port)}`, port, close, [Symbol.asyncDispose]: close };
}

function stop(server: Server, ring: EventRing): Promise<void> {
  ring.close();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

function readOptions(options: AdminOptions): { readonly port: number; readonly host: string; readonly token: string | undefined; readonly events: number } {
  if (options === null || typeof options !== "object") throw invalidArgument(`startAdmin() takes options such as { port: 9901 }, got ${describe(options)}`);
  const known = ["port", "host", "token", "events"];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw invalidArgument(`startAdmin(): unknown option '${key}' (known: ${known.join(", ")})`);
  }
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`startAdmin(): port must be an integer from 0 to 65535, got ${describe(options.port)}`);
  const host = options.host ?? "127.0.0.1";
  if (typeof host !== "string" || host === "") throw invalidArgument(`startAdmin(): host must be an address such as "127.0.0.1", got ${describe(options.host)}`);
  const token = options.token;
  if (token !== undefined && (typeof token !== "string" || token.length < MIN_TOKEN_LENGTH || !TOKEN.test(token))) {
    // The token itself is never quoted back.
    throw invalidArgument(`startAdmin(): token must be a string of at least ${String(MIN_TOKEN_LENGTH)} characters of visible ASCII (no spaces)`);
  }
  if (token === undefined && !isLoopbackHost(host)) {
    throw invalidArgument(`startAdmin(): listening on ${host} would show the mesh's state to the network; set a token, or listen on 127.0.0.1`);
  }
  const events = options.events ?? DEFAULT_EVENTS;
  if (!Number.isInteger(events) || events < 1 || events > MAX_EVENTS) throw invalidArgument(`startAdmin(): events must be an integer from 1 to ${String(MAX_EVENTS)}, got ${describe(options.events)}`);
  return { port, host, token, events };
}

async function answer(mesh: Mesh, ring: EventRing, access: AdminAccess, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    res.setHeader("cache-control", "no-store");
    res.setHeader("x-content-type-options", "nosniff");
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://admin");
    } catch {
      send(res, 400, { error: { code: "BAD_REQUEST", message: "The request target is not a path." } });
      return;
    }
    // The page and its four files hold no data: with a token, they load without it (the page sends it
    // itself). Decided on the path as parsed, the one routed below (`/assets/../api/…` is /api/…).
    const denied = access.check(req, url.pathname === "/" || OPEN_ASSETS.has(url.pathname));
    if (denied !== undefined) {
      if (denied.status === 401) res.setHeader("www-authenticate", 'Bearer realm="proxyless admin"');
      send(res, denied.status, { error: { code: denied.status === 401 ? "UNAUTHORIZED" : "FORBIDDEN", message: denied.message } });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, { error: { code: "METHOD_NOT_ALLOWED", message: "The admin server is read-only: GET or HEAD." } });
      return;
    }
    const asset = url.pathname === "/" ? PAGE : url.pathname.startsWith("/assets/") ? await assetOf(url.pathname.slice("/assets/".length)) : undefined;
    if (asset !== undefined) {
      res.writeHead(200, { "content-type": asset.type, "content-length": Buffer.byteLength(asset.body), "content-security-policy": CSP, "x-frame-options": "DENY", "referrer-policy": "no-referrer" });
      res.end(asset.body);
      return;
    }
    const body = await route(mesh, ring, url);
    send(res, body.status, body.json);
  } catch (err) {
    if (err instanceof MeshError) send(res, STATUS_OF[err.code] ?? 400, { error: err });
    else {
      process.emitWarning(`proxyless admin server: ${err instanceof Error ? err.message : String(err)}`, { code: "PROXYLESS_ADMIN" });
      send(res, 500, { error: { code: "INTERNAL", message: "The admin server failed to answer; the process emitted a warning (code PROXYLESS_ADMIN) saying why." } });
    }
  }
}

async function route(mesh: Mesh, ring: EventRing, url: URL): Promise<{ readonly status: number; readonly json: unknown }> {
  const query = url.searchParams;
  switch (url.pathname) {
    case "/api":
      return { status: 200, json: { endpoints: ENDPOINTS } };
    case "/api/snapshot":
      return { status: 200, json: mesh.snapshot() };
    case "/api/config":
      return { status: 200, json: configs(mesh, query.get("service") ?? undefined) };
    case "/api/explain":
      return { status: 200, json: await explain(mesh, query) };
    case "/api/events": {
      const since = Number(query.get("since") ?? "0");
      if (!Number.isInteger(since) || since < 0) throw invalidArgument(`since must be an event's seq (an integer >= 0), got ${JSON.stringify(query.get("since")?.slice(0, 100))}`);
      const limit = Number(query.get("limit") ?? String(DEFAULT_EVENTS));
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS) throw invalidArgument(`limit must be an integer from 1 to ${String(MAX_EVENTS)}, got ${JSON.stringify(query.get("limit")?.slice(0, 100))}`);
      return { status: 200, json: { events: ring.since(since, limit) } };
    }
    default:
      return { status: 404, json: { error: { code: "NOT_FOUND", message: `No such admin endpoint: ${url.pathname.slice(0, 200)}. Known: ${Object.keys(ENDPOINTS).join(", ")}` } } };
  }
}

function unknownService(service: string): MeshError {
  return new MeshError("ERR_UNKNOWN_SERVICE", `The mesh does not call '${service.slice(0, 100)}': the admin server shows the services this process calls (see /api/snapshot), and watches nothing new`, { details: { service } });
}

function configs(mesh: Mesh, only: string | undefined): unknown {
  const snapshot = mesh.snapshot();
  const services = snapshot.services.filter((s) => only === undefined || s.name === only);
  if (only !== undefined && services.length === 0) throw unknownService(only);
  return {
    services: services.map((s) => ({ name: s.name, version: s.config.version, source: s.config.source, policy: s.policy, config: mesh.inspect(s.name)?.config ?? null })),
  };
}

async function explain(mesh: Mesh, query: URLSearchParams): Promise<unknown> {
  const service = query.get("service");
  if (service === null || service === "") throw invalidArgument("explain needs ?service=NAME (and method, path, header=name:value as the request would have them)");
  const parsed = headersFromLines(query.getAll("header"));
  if ("bad" in parsed) throw invalidArgument(`header must be name:value, got ${JSON.stringify(parsed.bad.slice(0, 100))}`);
  const headers = parsed.headers;
  // Read-only: watch: false looks only at services the mesh watches already, and starts no watch.
  return mesh.explain(service, { method: query.get("method") ?? "GET", path: query.get("path") ?? "/", headers }, { watch: false });
}

function send(res: ServerResponse, status: number, json: unknown): void {
  const body = adminJson(json);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
