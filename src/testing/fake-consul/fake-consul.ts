import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { compileFilter, type FilterPredicate } from "../../config/filter-expression.ts";
import { checkKey, ConsulState, type CheckRecord, type CheckStatus, type NodeRecord, type ServiceRecord } from "./consul-state.ts";
import { parseGoDuration } from "../../config/duration.ts";
import { parseGoBool, queryHeaders, sendJson, sendText } from "./http-util.ts";
import { systemClock, type Clock, type TimerHandle } from "../../core/clock.ts";
import { systemRandom, type Random } from "../../core/random.ts";
import { blockingWaitMs } from "./blocking-wait.ts";
import { notImplemented, refusal, unserved } from "./unimplemented.ts";
import { ConfigEntries, ConfigEntryError } from "./config-entries.ts";
import { KvStore } from "./kv-store.ts";
import { agentCheck, agentHealth, agentService, aggregateStatus, catalogService, hasTags, healthStatusCode } from "./views.ts";
import { parseCatalogRegistration, parseCheckRegistration, parseServiceRegistration, RegistrationError } from "./registration.ts";
import { FakeConnect } from "./connect.ts";
import { aclAllows, aclCheck, requestToken, type AclNeed, type FakeAclToken } from "./acl.ts";
import type { TestCertificateAuthority } from "../test-ca.ts";

/** Options for {@link FakeConsul.start}. */
export interface FakeConsulOptions {
  /** The port to listen on, on 127.0.0.1 (8500 is Consul's). Default 0: one the OS chooses. */
  readonly port?: number;
  /** The agent's node name. Default `fake-node`. */
  readonly node?: string;
  /** The datacenter. Default `dc1`. */
  readonly datacenter?: string;
  /** The Connect CA's SPIFFE trust domain. Default `11111111-2222-3333-4444-555555555555.consul`, as in Consul's docs. */
  readonly trustDomain?: string;
  /** Lifetime of the leaf certificates the Connect CA issues, in ms; they are renewed at 80% of it. Default 72 hours, as Consul. */
  readonly leafValidForMs?: number;
  /** What authorize answers when no intention matches. Default `allow` (Consul with ACLs off). */
  readonly defaultIntentionPolicy?: "allow" | "deny";
  /**
   * Turns ACLs on, default deny: the tokens that exist, by secret, and what each may do. A request
   * without a token, or with an unknown one, gets 403 as from Consul. Off unless given.
   */
  readonly aclTokens?: Readonly<Record<string, FakeAclToken>>;
  /**
   * Serve HTTPS (as an agent with `tls.https` set) with this certificate; `url` is then `https://`.
   * With `requireClientCert`, clients must present a certificate that chains to `ca` (Consul's
   * `verify_incoming`).
   */
  readonly tls?: FakeConsulTls;
  /**
   * The clock that times blocking queries (a `FakeClock` ends their waits when advanced). Default the
   * system clock.
   */
  readonly clock?: Clock;
  /** The source of the blocking wait's random extra (up to wait/16, as Consul adds). Default `Math.random`. */
  readonly random?: Random;
}

/** HTTPS settings of a {@link FakeConsul}. */
export interface FakeConsulTls {
  /** The server certificate (PEM); for `https://127.0.0.1` it needs the IP SAN 127.0.0.1. */
  readonly cert: string;
  /** Its private key (PEM). */
  readonly key: string;
  /** CA certificates (PEM) that client certificates must chain to. */
  readonly ca?: string;
  /** Require a client certificate (Consul's `verify_incoming`). */
  readonly requireClientCert?: boolean;
}

interface Waiter {
  readonly wake: () => void;
}

/**
 * An unsigned integer query parameter as Consul's `strconv.ParseUint` reads it: undefined when not
 * given, null when it does not parse (500 with Go's message sent, as Consul answers).
 */
function parseUint(params: URLSearchParams, name: string, res: ServerResponse): number | undefined | null {
  const text = params.get(name);
  if (text === null) return undefined;
  if (/^\d+$/.test(text) && Number(text) <= Number.MAX_SAFE_INTEGER) return Number(text);
  const reason = /^\d+$/.test(text) ? "value out of range" : "invalid syntax";
  sendText(res, 500, `strconv.ParseUint: parsing ${JSON.stringify(text)}: ${reason}`);
  return null;
}

/** The header Consul sets when a token presented could not see part of the results. */
const FILTERED_HEADER = "x-consul-results-filtered-by-acls";

/** A body of a read that is not JSON: `?raw` KV values. */
class RawAnswer {
  readonly body: Buffer;
  readonly headers: Record<string, string>;

  constructor(body: Buffer, headers: Record<string, string>) {
    this.body = body;
    this.headers = headers;
  }
}

/** What the ACL filter of a read did: the results a token may not see are gone. */
class AclFiltered {
  readonly value: unknown;
  /** Whether anything was taken out (and a token was presented: Consul does not tell the anonymous). */
  readonly filtered: boolean;

  constructor(value: unknown, filtered: boolean) {
    this.value = value;
    this.filtered = filtered;
  }
}

/**
 * A fake Consul agent for tests: a real HTTP server on 127.0.0.1 (port chosen by the OS) that answers
 * as a one-node Consul CE (agent and server) for the part of Consul's HTTP API it serves, with Consul's
 * status codes and plain-text messages: blocking queries (`index`, `wait` with Consul's default, cap
 * and jitter), `/v1/health/service/:name` and `/v1/catalog/service/:name` (`passing`, `tag`, `filter`,
 * and ACL filtering to `[]` with `X-Consul-Results-Filtered-By-ACLs`), `/v1/catalog/services` (with the
 * servers' `consul` service), `/v1/catalog/register`, the agent's services and checks (register,
 * deregister, list, TTL updates, agent health), KV (`/v1/kv`, with `raw`, `cas`, `flags`), config
 * entries (`/v1/config`, with Consul's validation and graph validation of discovery chains), and
 * Connect: CA roots, leaf certificates (real ECDSA certificates with SPIFFE IDs, re-issued on rotation
 * and before expiry), authorize and the intention queries, evaluated from `service-intentions`
 * entries. ACLs are enforced when `aclTokens` is given. A Consul endpoint or parameter it does not
 * serve is answered 501 `FakeConsul does not implement …`, naming it; docs/consul.md has the table.
 *
 * Hooks let a test break it the ways a real Consul breaks: {@link FakeConsul.rewindIndex},
 * {@link FakeConsul.zeroIndexNext}, {@link FakeConsul.churn}, {@link FakeConsul.failNext},
 * {@link FakeConsul.garbageNext}, {@link FakeConsul.hang}, {@link FakeConsul.dropConnections},
 * {@link FakeConsul.restart}, {@link FakeConsul.rotateConnectCa} and {@link FakeConsul.renewLeaf}.
 *
 * The fake does not run HTTP, TCP or gRPC checks: their status is the one registered (critical by
 * default, as in Consul) until a test changes it with {@link FakeConsul.setCheck}. TTL checks expire.
 */
export class FakeConsul {
  /** `http://127.0.0.1:<port>`, or `https://` with `tls`. */
  readonly url: string;
  readonly #server: Server;
  readonly #state = new ConsulState();
  readonly #config = new ConfigEntries();
  readonly #kvStore = new KvStore();
  #kvIndex = 1;
  readonly #sockets = new Set<Socket>();
  readonly #waiters = new Set<Waiter>();
  readonly #ttlTimers = new Map<string, NodeJS.Timeout>();
  readonly #ttls = new Map<string, number>();
  readonly #requests = new Map<string, number>();
  readonly #queries: { readonly path: string; readonly params: URLSearchParams }[] = [];
  readonly #nodeName: string;
  readonly #datacenter: string;
  #failures: { count: number; status: number; body: string } = { count: 0, status: 500, body: "" };
  #garbage = 0;
  #zeroIndex = 0;
  /** The path prefix of requests that get no answer, when hanging. */
  #hanging: string | undefined;
  readonly #options: FakeConsulOptions;
  #connect: FakeConnect;
  readonly #clock: Clock;
  readonly #random: Random;

  private constructor(server: Server, url: string, options: FakeConsulOptions) {
    this.#server = server;
    this.url = url;
    this.#options = options;
    this.#nodeName = options.node ?? "fake-node";
    this.#datacenter = options.datacenter ?? "dc1";
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#connect = this.#newConnect();
    this.#addAgentNode();
  }

  #newConnect(): FakeConnect {
    return new FakeConnect(
      {
        datacenter: this.#datacenter,
        trustDomain: this.#options.trustDomain ?? "11111111-2222-3333-4444-555555555555.consul",
        leafValidForMs: this.#options.leafValidForMs ?? 72 * 3_600_000,
        defaultIntentionPolicy: this.#options.defaultIntentionPolicy ?? "allow",
        bump: () => this.#state.bump(),
        wake: () => this.#wakeAll(),
      },
      this.#config,
    );
  }

  /**
   * The Connect CA's active root, created on first use: mint client certificates from it in tests
   * (`(await fake.connectCa()).issue({ uri })`).
   */
  connectCa(): Promise<TestCertificateAuthority> {
    return this.#connect.active();
  }

  /** Rotates the Connect CA: a new active root (the old one stays in the roots) and new leaves from it; blocked root and leaf queries return. */
  rotateConnectCa(): Promise<void> {
    return this.#connect.rotate();
  }

  /**
   * Re-issues a service's leaf certificate now, as Consul does when one nears expiry.
   *
   * @param service - the service
   */
  renewLeaf(service: string): Promise<void> {
    return this.#connect.renew(service);
  }

  /**
   * Starts a fake Consul on 127.0.0.1, on a port the OS chooses unless `options.port` names one.
   *
   * @param options - port, node name, datacenter, ACLs, TLS
   * @throws the server's error when the port cannot be bound (`EADDRINUSE`)
   */
  static async start(options: FakeConsulOptions = {}): Promise<FakeConsul> {
    const tls = options.tls;
    const server: Server =
      tls === undefined
        ? createServer()
        : createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.ca === undefined ? {} : { ca: tls.ca }), requestCert: tls.requireClientCert === true, rejectUnauthorized: tls.requireClientCert === true });
    server.listen(options.port ?? 0, "127.0.0.1");
    await once(server, "listening");
    const fake = new FakeConsul(server, `${tls === undefined ? "http" : "https"}://127.0.0.1:${(server.address() as AddressInfo).port}`, options);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      fake.handle(req, res);
    });
    server.on("connection", (socket: Socket) => {
      fake.#sockets.add(socket);
      socket.on("close", () => fake.#sockets.delete(socket));
    });
    return fake;
  }

  /** Stops the server, ends blocked queries and clears TTL timers. */
  async close(): Promise<void> {
    this.#connect.close();
    for (const timer of this.#ttlTimers.values()) clearTimeout(timer);
    this.#ttlTimers.clear();
    this.#wakeAll();
    this.dropConnections();
    this.#server.close();
    if (this.#server.listening) await once(this.#server, "close");
  }

  /**
   * How many requests reached a path prefix, such as `/v1/health/service/orders`.
   *
   * @param prefix - a path prefix
   */
  requestCount(prefix: string): number {
    let n = 0;
    for (const [path, count] of this.#requests) if (path.startsWith(prefix)) n += count;
    return n;
  }

  /**
   * The query parameters of the GET requests to a path, oldest first (the last 1000 are kept).
   *
   * @param path - a path, such as `/v1/health/service/orders`
   */
  queries(path: string): URLSearchParams[] {
    return this.#queries.filter((q) => q.path === path).map((q) => q.params);
  }

  /** Blocking queries waiting right now. */
  get blockedQueries(): number {
    return this.#waiters.size;
  }

  /**
   * Sets a check's status, as the agent would after running it. Wakes blocked queries.
   *
   * @param checkId - the check's ID, such as `service:orders-1`
   * @param status - the new status
   * @throws Error when there is no such check
   */
  setCheck(checkId: string, status: CheckStatus): void {
    if (!this.#state.setCheck(this.#nodeName, checkId, status, "")) throw new Error(`FakeConsul: no check ${checkId} on the agent`);
    this.#wakeAll();
  }

  /** Moves every index back (a restored Raft snapshot); blocked queries return the lower index. */
  rewindIndex(to = 1): void {
    this.#state.rewind(to);
    this.#wakeAll();
  }

  /** The next `count` query responses carry `X-Consul-Index: 0` (an old Consul bug). */
  zeroIndexNext(count = 1): void {
    this.#zeroIndex = count;
  }

  /** Raises a service's index `times` times without changing it, waking blocked queries each time. */
  churn(service: string, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.#state.touch(service);
      this.#wakeAll();
    }
  }

  /**
   * The next `count` requests fail with `status` and a plain-text body, as a Consul server in trouble.
   *
   * @param count - how many requests
   * @param status - the status code, 500 by default
   * @param body - the body, `rpc error: No cluster leader` by default
   */
  failNext(count: number, status = 500, body = "rpc error making call: No cluster leader"): void {
    this.#failures = { count, status, body };
  }

  /** The next `count` responses are 200 with a body that is not JSON. */
  garbageNext(count = 1): void {
    this.#garbage = count;
  }

  /**
   * While on, requests get no answer at all (a hung agent). Turning it off does not answer them.
   *
   * @param on - whether to hang
   * @param pathPrefix - hang only requests whose path starts with this (`/v1/config/service-router`)
   */
  hang(on: boolean, pathPrefix = ""): void {
    this.#hanging = on ? pathPrefix : undefined;
  }

  /** Closes every open connection, blocked queries included. */
  dropConnections(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  /** An agent restarted with no data: every service, check and index is gone and connections drop. */
  restart(): void {
    for (const timer of this.#ttlTimers.values()) clearTimeout(timer);
    this.#ttlTimers.clear();
    this.#state.clear();
    this.#config.clear();
    this.#kvStore.clear();
    this.#kvIndex = 1;
    this.#connect.close();
    this.#connect = this.#newConnect();
    this.#addAgentNode();
    this.dropConnections();
  }

  /** @internal */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://fake");
    this.#requests.set(url.pathname, (this.#requests.get(url.pathname) ?? 0) + 1);
    if (req.method === "GET") {
      this.#queries.push({ path: url.pathname, params: url.searchParams });
      if (this.#queries.length > 1000) this.#queries.shift();
    }
    if (this.#hanging !== undefined && url.pathname.startsWith(this.#hanging)) return;
    if (this.#failures.count > 0) {
      this.#failures.count--;
      sendText(res, this.#failures.status, this.#failures.body);
      return;
    }
    res.setHeader("x-consul-default-acl-policy", this.#options.aclTokens === undefined ? "allow" : "deny");
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const token = requestToken(url.searchParams, req.headers);
      const refused = aclCheck(this.#options.aclTokens, token, this.#aclNeed(req.method ?? "GET", url.pathname, raw));
      if (refused !== undefined) {
        sendText(res, 403, refused);
        return;
      }
      const early = refusal(url, this.#datacenter);
      if (early !== undefined) {
        sendText(res, early.status, early.text);
        return;
      }
      this.#route(req.method ?? "GET", url, raw, res, token).catch((err: unknown) => {
        if (!res.headersSent) sendText(res, 500, err instanceof Error ? err.message : String(err));
      });
    });
  }

  async #route(method: string, url: URL, raw: Buffer, res: ServerResponse, token: string | undefined): Promise<void> {
    const path = url.pathname;
    const body = raw.toString("utf8");
    let m: RegExpExecArray | null;
    if ((m = /^\/v1\/kv\/(.*)$/.exec(path)) !== null) return this.#kv(method, decodeURIComponent(m[1] ?? ""), url.searchParams, raw, res);
    if ((m = /^\/v1\/catalog\/service\/(.+)$/.exec(path)) !== null) {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      return this.#catalogService(decodeURIComponent(m[1] ?? ""), url.searchParams, res, token);
    }
    if ((m = /^\/v1\/agent\/health\/service\/(id|name)\/(.+)$/.exec(path)) !== null) {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      return this.#agentHealth(m[1] === "id", decodeURIComponent(m[2] ?? ""), url.searchParams, res);
    }
    if ((m = /^\/v1\/health\/service\/(.*)$/.exec(path)) !== null) {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      return this.#health(decodeURIComponent(m[1] ?? ""), url.searchParams, res, token);
    }
    if (path === "/v1/config") {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      return this.#configWrite(res, url.searchParams, (cas) => this.#config.apply(body, this.#state.bump(), cas));
    }
    if ((m = /^\/v1\/config\/([^/]+)\/([^/]+)$/.exec(path)) !== null) {
      const kind = decodeURIComponent(m[1] ?? "");
      const name = decodeURIComponent(m[2] ?? "");
      if (method === "DELETE") return this.#configWrite(res, url.searchParams, (cas) => this.#config.delete(kind, name, cas, this.#state.bump()));
      if (method !== "GET") return this.#methodNotAllowed(res, "GET, DELETE");
      return this.#query(url.searchParams, res, () => this.#config.index(kind, name), () => {
        const entry = this.#config.get(kind, name);
        return entry === undefined ? { status: 404, text: `Config entry not found for "${kind}" / "${name}"` } : entry;
      });
    }
    if ((m = /^\/v1\/config\/([^/]+)$/.exec(path)) !== null) {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      const kind = decodeURIComponent(m[1] ?? "");
      return this.#query(url.searchParams, res, () => this.#config.index(kind), () =>
        this.#config.list(kind).filter((e) => this.#mayRead(token, kind === "service-intentions" ? { resource: "intentions", access: "read", name: e.Name } : { resource: "service", access: "read", name: e.Name })),
      );
    }
    if (path === "/v1/catalog/services") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      return this.#query(url.searchParams, res, () => this.#state.catalogIndex, () => {
        const all = Object.entries(this.#state.services());
        const visible = all.filter(([name]) => this.#mayRead(token, { resource: "service", access: "read", name }));
        return new AclFiltered(Object.fromEntries(visible), token !== undefined && visible.length < all.length);
      });
    }
    if (path.startsWith("/v1/agent/connect/") || path.startsWith("/v1/connect/")) return this.#connectRoute(method, url, body, res);
    if (path === "/v1/catalog/register") {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      return this.#write(res, () => {
        const { node, service, checks } = parseCatalogRegistration(body, this.#datacenter);
        this.#state.putNode(node);
        if (service !== undefined) this.#state.putService(node.Node, service, checks);
        return true;
      });
    }
    if (path === "/v1/agent/service/register") {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      return this.#write(res, () => {
        const { service, checks, ttls } = parseServiceRegistration(body, this.#nodeName);
        this.#state.putService(this.#nodeName, service, checks);
        for (const [checkId, ttl] of ttls) this.#armTtl(checkId, ttl);
        return "";
      });
    }
    if ((m = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path)) !== null) {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      const id = decodeURIComponent(m[1] ?? "");
      if (this.#agentInstance(id) === undefined) {
        sendText(res, 404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
        return;
      }
      return this.#write(res, () => {
        this.#state.deleteService(id);
        for (const checkId of [...this.#ttls.keys()]) if (this.#state.checks.get(checkKey(this.#nodeName, checkId)) === undefined) this.#disarmTtl(checkId);
        return "";
      });
    }
    if ((m = /^\/v1\/agent\/service\/([^/]+)$/.exec(path)) !== null && m[1] !== "register") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      const id = decodeURIComponent(m[1] ?? "");
      const instance = this.#agentInstance(id);
      if (instance === undefined) {
        sendText(res, 404, `unknown service ID: ${id}`);
        return;
      }
      sendJson(res, 200, { ...agentService(instance.service, this.#datacenter), ContentHash: String(this.#state.serviceIndex(instance.service.Service)) });
      return;
    }
    if (path === "/v1/agent/services") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      const services: Record<string, unknown> = {};
      for (const [id, instance] of this.#state.instances()) {
        if (instance.node !== this.#nodeName || instance.catalogOnly || !this.#mayRead(token, { resource: "service", access: "read", name: instance.service.Service })) continue;
        services[id] = agentService(instance.service, this.#datacenter);
      }
      sendJson(res, 200, services);
      return;
    }
    if ((m = /^\/v1\/agent\/check\/(pass|warn|fail|update)\/(.+)$/.exec(path)) !== null) {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      return this.#checkUpdate(m[1] ?? "", decodeURIComponent(m[2] ?? ""), url.searchParams, body, res);
    }
    if (path === "/v1/agent/checks") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      return this.#agentChecks(url.searchParams, res, token);
    }
    if (path === "/v1/agent/check/register") {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      return this.#write(res, () => {
        const { check, ttl } = parseCheckRegistration(body, this.#nodeName, (id) => this.#agentInstance(id)?.service);
        this.#state.putCheck(check);
        if (ttl === undefined) this.#disarmTtl(check.CheckID);
        else this.#armTtl(check.CheckID, ttl);
        return "";
      });
    }
    if ((m = /^\/v1\/agent\/check\/deregister\/(.+)$/.exec(path)) !== null) {
      if (method !== "PUT") return this.#methodNotAllowed(res, "PUT");
      const id = decodeURIComponent(m[1] ?? "");
      if (!this.#isAgentCheck(id)) {
        sendText(res, 404, `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`);
        return;
      }
      return this.#write(res, () => {
        this.#state.deleteCheck(this.#nodeName, id);
        this.#disarmTtl(id);
        return "";
      });
    }
    const answer = unserved(method, path);
    sendText(res, answer.status, answer.text);
  }

  /** A service instance of this agent (not one the catalog alone holds), by ID. */
  #agentInstance(id: string): { readonly service: ServiceRecord } | undefined {
    const instance = this.#state.instances().get(id);
    return instance === undefined || instance.node !== this.#nodeName || instance.catalogOnly ? undefined : instance;
  }

  /** Whether a check is one of this agent's (serfHealth belongs to the servers, not the agent). */
  #isAgentCheck(id: string): boolean {
    return id !== "serfHealth" && this.#state.checks.has(checkKey(this.#nodeName, id));
  }

  #agentChecks(params: URLSearchParams, res: ServerResponse, token: string | undefined): void {
    const filter = this.#filter(params, res);
    if (filter === null) return;
    const all = [...this.#state.checks.values()].filter((c) => c.Node === this.#nodeName && c.CheckID !== "serfHealth").map((c) => agentCheck(this.#state, c));
    const matching = all.filter((c) => filter === undefined || filter(c));
    // Node checks need node:read, which the fake's tokens express as read on every service ("" prefix).
    const visible = matching.filter((c) => this.#mayRead(token, { resource: "service", access: "read", name: typeof c.ServiceName === "string" ? c.ServiceName : "" }));
    const headers: Record<string, string> = token !== undefined && visible.length < matching.length ? { [FILTERED_HEADER]: "true" } : {};
    sendJson(res, 200, Object.fromEntries(visible.map((c) => [c.CheckID, c])), headers);
  }

  /** `?filter` compiled; undefined when not given, null when it does not compile (400 sent). */
  #filter(params: URLSearchParams, res: ServerResponse): FilterPredicate | undefined | null {
    const filterText = params.get("filter");
    if (filterText === null || filterText === "") return undefined;
    try {
      return compileFilter(filterText);
    } catch (err) {
      sendText(res, 400, `Failed to create boolean expression evaluator: ${(err as Error).message}`);
      return null;
    }
  }

  #catalogService(name: string, params: URLSearchParams, res: ServerResponse, token: string | undefined): Promise<void> | undefined {
    const filter = this.#filter(params, res);
    if (filter === null) return undefined;
    const tags = params.getAll("tag");
    return this.#query(params, res, () => this.#state.serviceIndex(name), () => {
      // As Consul: the ACL filter first, so that ?filter runs only on what the token may see.
      const all = catalogService(this.#state, name);
      if (!this.#mayRead(token, { resource: "service", access: "read", name })) return new AclFiltered([], token !== undefined && all.length > 0);
      const value = all.filter((e) => hasTags(e.ServiceTags as string[], tags)).filter((e) => filter === undefined || filter(e));
      return new AclFiltered(value, false);
    });
  }

  #mayRead(token: string | undefined, need: AclNeed): boolean {
    return aclAllows(this.#options.aclTokens, token, need);
  }

  /** The permission a request needs (Consul's rules for the endpoints the fake serves); undefined for none. */
  #aclNeed(method: string, path: string, raw: Buffer): AclNeed | undefined {
    const read = method === "GET" || method === "HEAD";
    const service = (name: string, access: "read" | "write" = read ? "read" : "write"): AclNeed => ({ resource: "service", access, name });
    const field = (key: string): string => {
      try {
        const parsed = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        const value = parsed[key] ?? parsed[key.toLowerCase()];
        return typeof value === "string" ? value : "";
      } catch {
        return "";
      }
    };
    let m: RegExpExecArray | null;
    // Consul answers these with the results the token may not read filtered out, not with 403.
    if (/^\/v1\/(?:health|catalog)\/service\/(.+)$/.test(path)) return { resource: "token", access: "read", name: "" };
    if ((m = /^\/v1\/agent\/health\/service\/name\/(.+)$/.exec(path)) !== null) return service(decodeURIComponent(m[1] ?? ""));
    const instanceService = (id: string): string => this.#state.instances().get(decodeURIComponent(id))?.service.Service ?? "";
    if ((m = /^\/v1\/agent\/health\/service\/id\/(.+)$/.exec(path)) !== null) return service(instanceService(m[1] ?? ""));
    if ((m = /^\/v1\/agent\/check\/(?:pass|warn|fail|update)\/(.+)$/.exec(path)) !== null) {
      // A service's check needs service:write on it; a node check, write on every service (node:write, roughly).
      return service(this.#state.checks.get(checkKey(this.#nodeName, decodeURIComponent(m[1] ?? "")))?.ServiceName ?? "", "write");
    }
    if (path === "/v1/catalog/register") {
      let body: { Service?: { Service?: unknown } } = {};
      try {
        body = JSON.parse(raw.toString("utf8")) as typeof body;
      } catch {
        // The route answers 400 for a body that does not parse; any token may learn that.
      }
      return service(typeof body.Service?.Service === "string" ? body.Service.Service : "", "write");
    }
    if ((m = /^\/v1\/agent\/service\/([^/]+)$/.exec(path)) !== null && m[1] !== "register") return service(instanceService(m[1] ?? ""), "read");
    if ((m = /^\/v1\/kv\/(.*)$/.exec(path)) !== null) return { resource: "key", access: read ? "read" : "write", name: decodeURIComponent(m[1] ?? "") };
    if (path === "/v1/config") return field("Kind") === "service-intentions" ? { resource: "intentions", access: "write", name: field("Name") } : service(field("Name"), "write");
    if ((m = /^\/v1\/config\/([^/]+)\/([^/]+)$/.exec(path)) !== null) {
      const name = decodeURIComponent(m[2] ?? "");
      return m[1] === "service-intentions" ? { resource: "intentions", access: read ? "read" : "write", name } : service(name);
    }
    if (path === "/v1/agent/service/register") return service(field("Name"), "write");
    if ((m = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path)) !== null) {
      // An unknown ID is 404 before any permission is checked, as in Consul.
      const known = this.#agentInstance(decodeURIComponent(m[1] ?? ""));
      return known === undefined ? { resource: "token", access: "write", name: "" } : service(known.service.Service, "write");
    }
    if (path === "/v1/agent/checks") return { resource: "token", access: "read", name: "" };
    if ((m = /^\/v1\/agent\/check\/deregister\/(.+)$/.exec(path)) !== null) {
      const id = decodeURIComponent(m[1] ?? "");
      if (!this.#isAgentCheck(id)) return { resource: "token", access: "write", name: "" };
      return service(this.#state.checks.get(checkKey(this.#nodeName, id))?.ServiceName ?? "", "write");
    }
    if (path === "/v1/agent/check/register") {
      const serviceId = field("ServiceID");
      if (serviceId === "") return service("", "write");
      const known = this.#agentInstance(serviceId);
      return known === undefined ? { resource: "token", access: "write", name: "" } : service(known.service.Service, "write");
    }
    if ((m = /^\/v1\/agent\/connect\/ca\/leaf\/(.+)$/.exec(path)) !== null) return service(decodeURIComponent(m[1] ?? ""), "write");
    if (path === "/v1/agent/connect/authorize") return service(field("Target"), "write");
    if (path.startsWith("/v1/connect/intentions")) return { resource: "intentions", access: "read", name: "*" };
    return undefined;
  }

  async #connectRoute(method: string, url: URL, body: string, res: ServerResponse): Promise<void> {
    const path = url.pathname;
    const params = url.searchParams;
    const connect = this.#connect;
    let m: RegExpExecArray | null;
    if (path === "/v1/connect/ca/roots" || path === "/v1/agent/connect/ca/roots") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      await connect.active();
      if (path === "/v1/connect/ca/roots" && params.get("pem") === "true") {
        const pem = connect.rootsPem();
        res.writeHead(200, { "content-type": "application/pem-certificate-chain", "content-length": Buffer.byteLength(pem), ...queryHeaders(connect.rootsIndex) });
        res.end(pem);
        return;
      }
      return this.#query(params, res, () => connect.rootsIndex, () => connect.rootsBody(path === "/v1/connect/ca/roots"));
    }
    if ((m = /^\/v1\/agent\/connect\/ca\/leaf\/(.+)$/.exec(path)) !== null) {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      const service = decodeURIComponent(m[1] ?? "");
      await connect.ensureLeaf(service);
      return this.#query(params, res, () => connect.leafIndex(service), () => connect.leafBody(service));
    }
    if (path === "/v1/agent/connect/authorize") {
      if (method !== "POST") return this.#methodNotAllowed(res, "POST");
      let request: { Target?: unknown; ClientCertURI?: unknown };
      try {
        request = JSON.parse(body) as typeof request;
      } catch (err) {
        sendText(res, 400, `Request decode failed: ${(err as Error).message}`);
        return;
      }
      if (typeof request.Target !== "string" || request.Target === "") {
        sendText(res, 400, "Target service must be specified");
        return;
      }
      if (typeof request.ClientCertURI !== "string" || request.ClientCertURI === "") {
        sendText(res, 400, "ClientCertURI must be specified");
        return;
      }
      try {
        sendJson(res, 200, connect.authorize(request.Target, request.ClientCertURI));
      } catch (err) {
        sendText(res, 400, (err as Error).message);
      }
      return;
    }
    if (path === "/v1/connect/intentions/check" || path === "/v1/connect/intentions/exact") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      const source = params.get("source") ?? "";
      const destination = params.get("destination") ?? "";
      if (source === "" || destination === "") {
        sendText(res, 400, "required query parameters 'source' and 'destination' not set");
        return;
      }
      if (path.endsWith("/check")) {
        const first = connect.matching(source, destination)[0];
        const allowed = first === undefined ? this.#options.defaultIntentionPolicy !== "deny" : first.Action === "allow" && first.Permissions === undefined;
        sendJson(res, 200, { Allowed: allowed });
        return;
      }
      const exact = connect.intentions().find((i) => i.SourceName === source && i.DestinationName === destination);
      if (exact === undefined) sendText(res, 404, "Intention not found");
      else sendJson(res, 200, exact);
      return;
    }
    if (path === "/v1/connect/intentions/match") {
      if (method !== "GET") return this.#methodNotAllowed(res, "GET");
      const by = params.get("by");
      if (by !== "source" && by !== "destination") {
        sendText(res, 400, "required query parameter 'by' must be 'source' or 'destination'");
        return;
      }
      const out: Record<string, unknown[]> = {};
      for (const name of params.getAll("name")) {
        out[name] = connect.intentions().filter((i) => (by === "source" ? i.SourceName === name || i.SourceName === "*" : i.DestinationName === name || i.DestinationName === "*"));
      }
      sendJson(res, 200, out);
      return;
    }
    const answer = unserved(method, path);
    sendText(res, answer.status, answer.text);
  }

  #health(name: string, params: URLSearchParams, res: ServerResponse, token: string | undefined): Promise<void> | undefined {
    if (name === "") {
      sendText(res, 400, "Missing service name");
      return undefined;
    }
    const passingParam = params.get("passing");
    const passing = passingParam === null ? false : parseGoBool(passingParam);
    if (passing === undefined) {
      sendText(res, 400, "Invalid value for ?passing");
      return undefined;
    }
    const tags = params.getAll("tag");
    const filter = this.#filter(params, res);
    if (filter === null) return undefined;
    return this.#query(params, res, () => this.#state.serviceIndex(name), () => {
      const all = this.#state.health(name);
      if (!this.#mayRead(token, { resource: "service", access: "read", name })) return new AclFiltered([], token !== undefined && all.length > 0);
      const value = all
        .filter((e) => !passing || e.Checks.every((c) => c.Status === "passing"))
        .filter((e) => hasTags(e.Service.Tags, tags))
        .filter((e) => filter === undefined || filter(e));
      return new AclFiltered(value, false);
    });
  }

  /** A read with blocking-query semantics: waits while the index is <= `?index`, up to `?wait`. */
  async #query(params: URLSearchParams, res: ServerResponse, index: () => number, body: () => unknown): Promise<void> {
    if (params.has("stale") && params.has("consistent")) {
      sendText(res, 400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
      return;
    }
    const indexText = params.get("index");
    const minIndex = indexText === null ? 0 : /^\d+$/.test(indexText) ? Number(indexText) : Number.NaN;
    if (Number.isNaN(minIndex)) {
      sendText(res, 400, "Invalid index");
      return;
    }
    const waitText = params.get("wait");
    const wait = waitText === null ? undefined : parseGoDuration(waitText);
    if (waitText !== null && wait === undefined) {
      sendText(res, 400, "Invalid wait time");
      return;
    }
    if (minIndex > 0) await this.#block(minIndex, index, blockingWaitMs(wait, this.#random), res);
    if (res.destroyed) return;
    if (this.#garbage > 0) {
      this.#garbage--;
      res.writeHead(200, { "content-type": "application/json", ...queryHeaders(Math.max(1, index())) });
      res.end('{"this is": not json');
      return;
    }
    let reported = Math.max(1, index());
    if (this.#zeroIndex > 0) {
      this.#zeroIndex--;
      reported = 0;
    }
    let answer = body();
    const headers = queryHeaders(reported);
    if (answer instanceof AclFiltered) {
      if (answer.filtered) headers[FILTERED_HEADER] = "true";
      answer = answer.value;
    }
    if (answer instanceof RawAnswer) {
      res.writeHead(200, { ...headers, ...answer.headers, "content-length": answer.body.length });
      res.end(answer.body);
      return;
    }
    if (answer instanceof Object && "status" in answer && "text" in answer && typeof answer.text === "string" && typeof answer.status === "number") {
      sendText(res, answer.status, answer.text, headers);
      return;
    }
    sendJson(res, 200, answer, headers);
  }

  #agentHealth(byId: boolean, key: string, params: URLSearchParams, res: ServerResponse): void {
    const mine = [...this.#state.instances().values()].filter((i) => i.node === this.#nodeName && (byId ? i.service.ID === key : i.service.Service === key));
    if (mine.length === 0) {
      sendText(res, 404, byId ? `ServiceId ${key} not found` : `ServiceName ${key} Not Found`);
      return;
    }
    const views = mine.map((i) => agentHealth(this.#state, this.#nodeName, i.service, this.#datacenter));
    const worst = aggregateStatus(views.map((v) => ({ Status: v.AggregatedStatus }) as CheckRecord));
    const status = healthStatusCode(worst);
    if (params.get("format") === "text") sendText(res, status, worst);
    else sendJson(res, status, byId ? views[0] : views);
  }

  #kv(method: string, key: string, params: URLSearchParams, value: Buffer, res: ServerResponse): Promise<void> | undefined {
    const recurse = params.has("recurse");
    if (method === "PUT" || method === "DELETE") {
      const conflicting = (method === "PUT" ? ["cas", "acquire", "release"] : ["recurse", "cas"]).filter((f) => params.has(f));
      if (conflicting.length > 1) {
        const sorted = new URLSearchParams([...params].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        sendText(res, 400, `Conflicting flags: ${sorted.toString()}\n`);
        return undefined;
      }
      if (key === "" && (method === "PUT" || !recurse)) {
        sendText(res, 400, "Missing key name");
        return undefined;
      }
    }
    if (method === "PUT") {
      for (const lock of ["acquire", "release"]) {
        if (params.has(lock)) {
          const refusal = notImplemented(`?${lock} (sessions and locks)`);
          sendText(res, refusal.status, refusal.text);
          return undefined;
        }
      }
      const flags = parseUint(params, "flags", res);
      const cas = parseUint(params, "cas", res);
      if (flags === null || cas === null) return undefined;
      this.#kvIndex = this.#state.bump();
      const written = this.#kvStore.put(key, value, this.#kvIndex, cas, flags);
      sendJson(res, 200, written);
      this.#wakeAll();
      return undefined;
    }
    if (method === "DELETE") {
      const cas = parseUint(params, "cas", res);
      if (cas === null) return undefined;
      this.#kvIndex = this.#state.bump();
      sendJson(res, 200, this.#kvStore.delete(key, recurse, cas));
      this.#wakeAll();
      return undefined;
    }
    if (method !== "GET") {
      this.#methodNotAllowed(res, "GET, PUT, DELETE");
      return undefined;
    }
    if (key === "" && !recurse && !params.has("keys")) {
      sendText(res, 400, "Missing key name");
      return undefined;
    }
    const keysOnly = params.has("keys");
    const raw = params.has("raw") && !recurse && !keysOnly;
    return this.#query(params, res, () => this.#kvStore.index(key, recurse || keysOnly, this.#kvIndex), () => {
      if (keysOnly) {
        const keys = this.#kvStore.keys(key, params.get("separator") ?? params.get("seperator") ?? undefined);
        return keys.length === 0 && key !== "" ? { status: 404, text: "" } : keys;
      }
      const entries = this.#kvStore.read(key, recurse);
      if (entries.length === 0) return { status: 404, text: "" };
      if (raw) {
        // As Consul: the value as stored, in a type no browser runs.
        const body = Buffer.from(entries[0]?.Value ?? "", "base64");
        return new RawAnswer(body, { "content-type": "text/plain", "x-content-type-options": "nosniff", "content-security-policy": "sandbox" });
      }
      return entries;
    });
  }

  #configWrite(res: ServerResponse, params: URLSearchParams, write: (cas: number | undefined) => boolean): void {
    const cas = parseUint(params, "cas", res);
    if (cas === null) return;
    let ok: boolean;
    try {
      ok = write(cas);
    } catch (err) {
      if (err instanceof ConfigEntryError) {
        sendText(res, err.status, err.message);
        return;
      }
      throw err;
    }
    this.#wakeAll();
    sendJson(res, 200, ok);
  }

  #block(minIndex: number, index: () => number, wait: number, res: ServerResponse): Promise<void> {
    // Consul blocks while the index is <= the client's; a rewind ends the wait too (restored snapshot).
    if (index() > minIndex) return Promise.resolve();
    const startIndex = index();
    return new Promise<void>((resolve) => {
      const waiter: Waiter = {
        wake: () => {
          if (index() > minIndex || index() < startIndex) finish();
        },
      };
      const finish = (): void => {
        this.#clock.clearTimeout(timer);
        this.#waiters.delete(waiter);
        res.off("close", finish);
        resolve();
      };
      const timer: TimerHandle = this.#clock.setTimeout(finish, wait);
      res.on("close", finish);
      this.#waiters.add(waiter);
    });
  }

  #write(res: ServerResponse, apply: () => unknown): void {
    let result: unknown;
    try {
      result = apply();
    } catch (err) {
      if (err instanceof RegistrationError) {
        sendText(res, err.status, err.message);
        return;
      }
      throw err;
    }
    this.#wakeAll();
    if (result === "") {
      res.writeHead(200, { "content-length": 0 });
      res.end();
    } else sendJson(res, 200, result);
  }

  #checkUpdate(verb: string, checkId: string, params: URLSearchParams, body: string, res: ServerResponse): void {
    let status: CheckStatus;
    let output = params.get("note") ?? "";
    if (verb === "update") {
      let parsed: { Status?: unknown; Output?: unknown };
      try {
        parsed = JSON.parse(body) as { Status?: unknown; Output?: unknown };
      } catch (err) {
        sendText(res, 400, `Request decode failed: ${(err as Error).message}`);
        return;
      }
      if (parsed.Status !== "passing" && parsed.Status !== "warning" && parsed.Status !== "critical") {
        sendText(res, 400, `Invalid check status: '${typeof parsed.Status === "string" ? parsed.Status : ""}'`);
        return;
      }
      status = parsed.Status;
      output = typeof parsed.Output === "string" ? parsed.Output : "";
    } else {
      status = verb === "pass" ? "passing" : verb === "warn" ? "warning" : "critical";
    }
    const check = this.#state.checks.get(checkKey(this.#nodeName, checkId));
    if (check === undefined) {
      sendText(res, 404, `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`);
      return;
    }
    this.#state.setCheck(this.#nodeName, checkId, status, output);
    const ttl = this.#ttls.get(checkId);
    if (ttl !== undefined) this.#armTtl(checkId, ttl);
    this.#wakeAll();
    res.writeHead(200, { "content-length": 0 });
    res.end();
  }

  #disarmTtl(checkId: string): void {
    clearTimeout(this.#ttlTimers.get(checkId));
    this.#ttlTimers.delete(checkId);
    this.#ttls.delete(checkId);
  }

  #armTtl(checkId: string, ttlMs: number): void {
    this.#ttls.set(checkId, ttlMs);
    clearTimeout(this.#ttlTimers.get(checkId));
    const timer = setTimeout(() => {
      this.#ttlTimers.delete(checkId);
      if (this.#state.setCheck(this.#nodeName, checkId, "critical", "TTL expired")) this.#wakeAll();
    }, ttlMs);
    timer.unref();
    this.#ttlTimers.set(checkId, timer);
  }

  #methodNotAllowed(res: ServerResponse, allow: string): void {
    sendText(res, 405, "method not allowed", { allow });
  }

  #wakeAll(): void {
    for (const waiter of [...this.#waiters]) waiter.wake();
  }

  #addAgentNode(): void {
    const node: NodeRecord = {
      ID: "00000000-0000-4000-8000-000000000001",
      Node: this.#nodeName,
      Address: "127.0.0.1",
      Datacenter: this.#datacenter,
      TaggedAddresses: { lan: "127.0.0.1", wan: "127.0.0.1" },
      Meta: {},
    };
    this.#state.putNode(node);
    const serf: CheckRecord = {
      Node: this.#nodeName,
      CheckID: "serfHealth",
      Name: "Serf Health Status",
      Status: "passing",
      Notes: "",
      Output: "Agent alive and reachable",
      ServiceID: "",
      ServiceName: "",
      ServiceTags: [],
      Type: "",
      Namespace: "default",
    };
    this.#state.checks.set(checkKey(serf.Node, serf.CheckID), serf);
    // The agent is a server too: Consul's servers register themselves as the service `consul`.
    const consul: ServiceRecord = {
      ID: "consul",
      Service: "consul",
      Tags: [],
      Address: "",
      TaggedAddresses: {},
      Meta: {},
      Port: 8300,
      Weights: { Passing: 1, Warning: 1 },
      EnableTagOverride: false,
      Namespace: "default",
    };
    this.#state.putService(this.#nodeName, consul, [], true);
  }
}
