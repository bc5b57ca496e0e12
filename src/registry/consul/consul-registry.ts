import { EventEmitter } from "node:events";
import { systemClock, type Clock, type TimerHandle } from "../../core/clock.ts";
import { invalidConfig } from "../../core/errors.ts";
import { systemRandom, type Random } from "../../core/random.ts";
import { assertServiceName } from "../../core/service-name.ts";
import { expectOptions, optionalNumber } from "../../core/validate.ts";
import { EndpointSet } from "../../endpoint/endpoint-set.ts";
import type { Registration, ServiceRegistration } from "../registration.ts";
import type { Registry, RegistryListener, RegistryUpdate, RegistryWatch } from "../registry.ts";
import type { ServiceConfig } from "../../config/service-config.ts";
import { ConsulRegistration } from "./consul-registration.ts";
import { connectAuthority, connectIdentity } from "./consul-connect.ts";
import { blockingGet, type AgentSettings } from "./blocking-get.ts";
import type { IdentitySource } from "../../security/identity-source.ts";
import type { ConnectAuthority } from "../../security/consul-authorizer.ts";
import { BlockingLoop, type BlockingAnswer } from "./blocking-loop.ts";
import type { ConsulEntryKind } from "../../config/decode-consul.ts";
import { decodeHealth } from "./decode-health.ts";
import { ConfigWatch } from "./config-watch.ts";
import { SnapshotCache } from "./snapshot-cache.ts";
import { ConsulConnections } from "./consul-connections.ts";
import { ConsulCallError, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RESPONSE_DEPTH } from "./consul-answer.ts";

/** TLS settings for an agent served over HTTPS (Consul's `verify_incoming` needs `cert` and `key`). */
export interface ConsulTlsOptions {
  /** CA certificates (PEM) to trust instead of the system's. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** This client's certificate chain (PEM), for an agent that requires one. */
  readonly cert?: string | Buffer;
  /** This client's private key (PEM). */
  readonly key?: string | Buffer;
  /** The name to check the agent's certificate against (and send as SNI); default the URL's host. */
  readonly serverName?: string;
}

/** Options for {@link ConsulRegistry}. */
export interface ConsulRegistryOptions {
  /** The agent's address, `http://` or `https://`. Default `http://127.0.0.1:8500`. */
  readonly url?: string | undefined;
  /** TLS settings when `url` is `https://`. */
  readonly tls?: ConsulTlsOptions;
  /** ACL token, sent as `X-Consul-Token`. */
  readonly token?: string | undefined;
  /** Datacenter to query; the agent's own when left out. */
  readonly datacenter?: string | undefined;
  /** How long a blocking query may wait, in seconds. Default 60 (Consul caps it at 600). */
  readonly waitSeconds?: number;
  /** Queries allowed at once per watched service before rate limiting starts. Default 2. */
  readonly burst?: number;
  /** Sustained queries per second per watched service when its data churns. Default 1. */
  readonly queriesPerSecond?: number;
  /** Retry delay after a failure: the first one, in ms, doubled each time up to `maxBackoffMs`. Default 250. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay, in ms. Default 30000. */
  readonly maxBackoffMs?: number;
  /**
   * A file to keep the last endpoints of every watched service in, so that a process restarted while
   * Consul is unreachable serves from it until Consul answers. Off unless given.
   */
  readonly cacheFile?: string | undefined;
  /**
   * The largest answer read from Consul, in bytes; a larger one is a `registry_error` and the last
   * good state stays. Default 64 MiB (10,000 instances of a service make about 17 MB).
   */
  readonly maxResponseBytes?: number;
  /**
   * The deepest nesting of JSON arrays and objects an answer from Consul may have; a deeper one is a
   * `registry_error` and the last good state stays. Default 64 (Consul's deepest answers nest about 7).
   */
  readonly maxResponseDepth?: number;
  /** The clock, for the rate limit and backoff. */
  readonly clock?: Clock;
  /** The random source, for backoff jitter. */
  readonly random?: Random;
}

/** How long the first endpoints of a service wait for its config entries before they are served without. */
const CONFIG_WAIT_MS = 3000;

const KEYS = ["url", "tls", "token", "datacenter", "waitSeconds", "burst", "queriesPerSecond", "initialBackoffMs", "maxBackoffMs", "cacheFile", "maxResponseBytes", "maxResponseDepth", "clock", "random"] as const;

/**
 * Services and their instances from Consul: one blocking query on `/v1/health/service/:name` per watched
 * service, over undici. Follows Consul's rules for blocking loops: the index is reset
 * when it goes backwards, never below 1 after the first answer, and the loop is rate-limited (token
 * bucket, burst 2) so churn degrades into polling. Critical instances are reported as critical (the mesh
 * sends them nothing); warning ones keep their `Weights.Warning`. A service Consul has never listed an
 * instance of is *missing* (`ERR_UNKNOWN_SERVICE`); one that had instances and has none now is known
 * and empty (`ERR_NO_ENDPOINTS`). When Consul fails, the mesh keeps serving the last good endpoints; the loop
 * retries with jittered exponential backoff and reports each failure.
 *
 * @example
 * ```ts
 * const mesh = createMesh({ registry: new ConsulRegistry({ url: "http://127.0.0.1:8500" }) });
 * ```
 */
export class ConsulRegistry implements Registry {
  /** The agent's address, as given. */
  readonly url: string;
  readonly #options: AgentSettings;
  readonly #loops = new Set<WatchLoop>();
  readonly #registrationListeners = new Set<(error: Error) => void>();
  readonly #registrations = new Set<ConsulRegistration>();
  readonly #cache: SnapshotCache | undefined;
  /** Cache problems found before any watch could hear of them. */
  readonly #cacheErrors: Error[] = [];
  readonly #config: ConfigWatch;
  /** The Connect identities this registry made: their watches end when it closes. */
  readonly #identities = new Set<IdentitySource>();

  /**
   * @param options - see {@link ConsulRegistryOptions}
   * @throws MeshError `ERR_INVALID_CONFIG` naming the option at fault
   */
  constructor(options: ConsulRegistryOptions = {}) {
    const o = expectOptions(options, "consul", KEYS) as ConsulRegistryOptions;
    const url = o.url ?? "http://127.0.0.1:8500";
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalidConfig("consul.url", `expected a URL such as "http://127.0.0.1:8500", got ${JSON.stringify(url)}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw invalidConfig("consul.url", `expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    const tls = tlsOptions(o.tls);
    if (tls !== undefined && parsed.protocol !== "https:") throw invalidConfig("consul.tls", "TLS settings need an https:// url");
    this.url = parsed.origin;
    this.#options = {
      url: parsed.origin,
      token: o.token,
      datacenter: o.datacenter,
      waitSeconds: optionalNumber(o.waitSeconds, "consul.waitSeconds", { min: 1, max: 600 }) ?? 60,
      burst: optionalNumber(o.burst, "consul.burst", { min: 1, max: 100, integer: true }) ?? 2,
      queriesPerSecond: optionalNumber(o.queriesPerSecond, "consul.queriesPerSecond", { min: 0.001, max: 1000 }) ?? 1,
      initialBackoffMs: optionalNumber(o.initialBackoffMs, "consul.initialBackoffMs", { min: 1 }) ?? 250,
      maxBackoffMs: optionalNumber(o.maxBackoffMs, "consul.maxBackoffMs", { min: 1 }) ?? 30_000,
      maxResponseBytes: optionalNumber(o.maxResponseBytes, "consul.maxResponseBytes", { min: 1, integer: true }) ?? DEFAULT_MAX_RESPONSE_BYTES,
      maxResponseDepth: optionalNumber(o.maxResponseDepth, "consul.maxResponseDepth", { min: 1, max: 10_000, integer: true }) ?? DEFAULT_MAX_RESPONSE_DEPTH,
      clock: o.clock ?? systemClock,
      random: o.random ?? systemRandom,
      connections: new ConsulConnections(connectOptions(tls)),
    };
    this.#config = new ConfigWatch(this.#options, (kind, index, wait, cancel) => configQuery(this.#options, kind, index, wait, cancel));
    if (o.cacheFile !== undefined && (typeof o.cacheFile !== "string" || o.cacheFile === "")) {
      throw invalidConfig("consul.cacheFile", "expected a file path");
    }
    this.#cache =
      o.cacheFile === undefined
        ? undefined
        : new SnapshotCache(o.cacheFile, (error) => {
            if (this.#loops.size === 0) this.#cacheErrors.push(error);
            for (const loop of this.#loops) loop.report(error);
          });
  }

  /** Watches a service's instances; see {@link Registry.watch}. */
  watch(service: string, listener: RegistryListener): RegistryWatch {
    assertServiceName(service);
    const loop = new WatchLoop(service, listener, this.#options, this.#cache, this.#config, (l) => this.#stopped(l));
    this.#loops.add(loop);
    for (const error of this.#cacheErrors.splice(0)) loop.report(error);
    loop.start();
    return { close: () => loop.stop(), failingForMs: () => loop.failingForMs() };
  }

  /**
   * The identity of `service` from Consul Connect (its leaf certificate and the CA roots, watched with
   * blocking queries and renewed before expiry), for the mesh's `tls.identity`. Needs `service:write`.
   *
   * @example
   * ```ts
   * const consul = new ConsulRegistry();
   * const mesh = createMesh({ registry: consul, service: "web", tls: { identity: consul.connectIdentity("web") } });
   * ```
   */
  connectIdentity(service: string): IdentitySource {
    const source = connectIdentity(this.#options, service);
    this.#identities.add(source);
    return source;
  }

  /** Consul's authorize and intentions, for `mesh.inbound({ authorize: "consul" })`. */
  connectAuthority(): ConnectAuthority {
    return connectAuthority(this.#options);
  }

  /**
   * Registers this process with the local agent; see {@link Registry.register}. Prefer
   * `mesh.register()`, which deregisters on `mesh.close()`.
   *
   * @param registration - the instance
   * @throws MeshError `ERR_INVALID_CONFIG` for a registration the agent refuses (its reason quoted)
   */
  async register(registration: ServiceRegistration): Promise<Registration> {
    const created = await ConsulRegistration.create(registration, {
      url: this.url,
      token: this.#options.token,
      clock: this.#options.clock,
      limits: this.#options,
      dispatcher: this.#options.connections.foreground,
      background: this.#options.connections.background,
      onError: (error) => {
        for (const listener of this.#registrationListeners) listener(error);
      },
    });
    this.#registrations.add(created);
    return {
      id: created.id,
      deregister: async () => {
        await created.deregister();
        this.#registrations.delete(created);
      },
    };
  }

  /**
   * Listens for failures of registrations' heartbeats and restores (they keep retrying).
   *
   * @param listener - receives each failure
   */
  onRegistrationError(listener: (error: Error) => void): void {
    this.#registrationListeners.add(listener);
  }

  /** The number of services being watched. */
  get watchCount(): number {
    return this.#loops.size;
  }

  /**
   * Milliseconds since a service's data last came from Consul; undefined when it never has or is not
   * watched. How stale the endpoints in use may be.
   *
   * @param service - a watched service
   */
  staleness(service: string): number | undefined {
    for (const loop of this.#loops) if (loop.service === service) return loop.staleness();
    return undefined;
  }

  /**
   * Deregisters what {@link ConsulRegistry.register} registered, stops every watch (the Connect identities
   * it made included), and closes the connections to Consul.
   */
  async close(): Promise<void> {
    for (const loop of [...this.#loops]) loop.stop();
    const identities = [...this.#identities];
    this.#identities.clear();
    await Promise.all(identities.map((i) => i.close()));
    const registrations = [...this.#registrations];
    this.#registrations.clear();
    await Promise.all(registrations.map((r) => r.deregister()));
    await this.#options.connections.close();
  }

  #stopped(loop: WatchLoop): void {
    this.#loops.delete(loop);
  }
}

/**
 * The watch of one service: its instances (a blocking loop of its own) and its config entries (from the
 * registry's shared {@link ConfigWatch}). The first endpoints wait for the config, so that no request
 * is routed before the service's routes and splits are known.
 */
class WatchLoop {
  readonly service: string;
  readonly #listener: RegistryListener;
  readonly #settings: AgentSettings;
  readonly #cache: SnapshotCache | undefined;
  readonly #onStop: (loop: WatchLoop) => void;
  readonly #health: BlockingLoop;
  readonly #configWatch: ConfigWatch;
  #unsubscribe: (() => void) | undefined;
  #stopped = false;
  #last: EndpointSet | undefined;
  #lastConfig: string | undefined;
  /** What is held back until the config is known: the endpoints, or that Consul does not know the service. */
  #held: RegistryUpdate | undefined;
  /** Whether the last answer said Consul knows no instance of the service. */
  #missing = false;
  /** Whether Consul ever listed an instance of the service (in this watch). */
  #seen = false;
  /** Counts health answers, so that a late catalog lookup does not undo a newer answer. */
  #answers = 0;
  /** Releases held endpoints if the config takes too long. */
  #holdTimer: TimerHandle;
  /** Whether endpoints go out without waiting for config (it was known once, or took too long). */
  #released = false;
  #cacheTried = false;

  constructor(
    service: string,
    listener: RegistryListener,
    settings: AgentSettings,
    cache: SnapshotCache | undefined,
    configWatch: ConfigWatch,
    onStop: (loop: WatchLoop) => void,
  ) {
    this.service = service;
    this.#listener = listener;
    this.#settings = settings;
    this.#cache = cache;
    this.#configWatch = configWatch;
    this.#onStop = onStop;
    const report = (error: Error): void => {
      if (this.#stopped) return;
      this.#serveCache();
      this.#listener({ type: "error", error });
    };
    this.#health = new BlockingLoop(`'${service}'`, settings, (index, wait, cancel) => healthQuery(settings, service, index, wait, cancel), (body) => this.#acceptHealth(body), report);
  }

  start(): void {
    this.#unsubscribe = this.#configWatch.subscribe(this.service, {
      config: (config) => this.#acceptConfig(config),
      // Loop failures already name the Consul URL; entry problems are MeshErrors naming the entry and field.
      error: (error) => {
        if (!this.#stopped) this.#listener({ type: "error", error });
      },
    });
    this.#health.start();
  }

  /**
   * After a failure, and only before Consul has ever answered: serve the last endpoints seen (from
   * before a restart) until it does. Never while Consul is reachable, since the cache may be old.
   */
  #serveCache(): void {
    if (this.#cacheTried || this.#last !== undefined) return;
    this.#cacheTried = true;
    const cached = this.#cache?.get(this.service);
    if (cached === undefined) return;
    try {
      this.#last = EndpointSet.of(this.service, cached.endpoints);
      this.#listener({ type: "endpoints", endpoints: this.#last });
    } catch (err) {
      this.report(new Error(`ignoring cached endpoints of '${this.service}': ${(err as Error).message}`, { cause: err }));
    }
  }

  /** Passes a problem on to the mesh; the last good state stays in force. */
  report(error: Error): void {
    if (!this.#stopped) this.#listener({ type: "error", error: new Error(`Consul at ${this.#settings.url}: ${error.message}`, { cause: error }) });
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#health.stop();
    this.#settings.clock.clearTimeout(this.#holdTimer);
    this.#unsubscribe?.();
    this.#onStop(this);
  }

  /** How long the health query has been failing, in ms; undefined while it answers (warnings do not count). */
  failingForMs(): number | undefined {
    const since = this.#health.failingSince;
    return since === undefined ? undefined : Math.max(0, this.#settings.clock.now() - since);
  }

  staleness(): number | undefined {
    const last = this.#health.lastSuccess;
    return last === undefined ? undefined : this.#settings.clock.now() - last;
  }

  #acceptHealth(body: unknown): void {
    // Consul answered: from now on a cache file is never served (it may be older than this answer).
    this.#cacheTried = true;
    const decoded = decodeHealth(body);
    const answer = ++this.#answers;
    if (Array.isArray(body) && body.length === 0 && !this.#seen && this.#cache?.get(this.service) === undefined) {
      // No instance, and none ever seen: Consul's catalog lists only services with instances, so Consul
      // does not know this one (a typo, or not deployed). Its known services name close matches in the
      // error. A service seen before that has no instance now is known and empty (scaled to zero).
      if (this.#missing) return;
      this.#missing = true;
      this.#last = undefined;
      void knownServices(this.#settings).then((services) => {
        if (this.#stopped || answer !== this.#answers) return;
        this.#send(services === undefined ? { type: "missing" } : { type: "missing", services });
      });
      return;
    }
    this.#missing = false;
    this.#seen = true;
    const set = EndpointSet.of(this.service, decoded.endpoints);
    if (decoded.skipped.length > 0) {
      this.#listener({ type: "error", error: new Error(`Consul at ${this.#settings.url}: skipped instances of '${this.service}': ${decoded.skipped.join("; ")}`) });
    }
    const diff = set.diff(this.#last);
    if (this.#last === undefined || diff.added.length + diff.removed.length + diff.changed.length > 0 || !sameOrder(this.#last, set)) {
      this.#last = set;
      void this.#cache?.save(this.service, set);
      this.#send({ type: "endpoints", endpoints: set });
    }
  }

  /** Passes an answer on, or holds it until the config is known. */
  #send(update: RegistryUpdate): void {
    if (this.#released) {
      this.#listener(update);
      return;
    }
    this.#held = update;
    this.#holdTimer ??= this.#settings.clock.setTimeout(() => this.#releaseHeld(), CONFIG_WAIT_MS);
  }

  /** The config is slow (a config query hangs): serve the endpoints without it, and say so. */
  #releaseHeld(): void {
    if (this.#stopped || this.#released) return;
    this.#released = true;
    const pending = this.#configWatch.pendingKinds.join(", ");
    this.#listener({
      type: "error",
      error: new Error(`Consul at ${this.#settings.url}: the config entries (${pending}) are not known after ${CONFIG_WAIT_MS} ms; serving '${this.service}' without them until they arrive`),
    });
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) this.#listener(held);
  }

  #acceptConfig(config: ServiceConfig): void {
    if (this.#stopped) return;
    this.#released = true;
    this.#settings.clock.clearTimeout(this.#holdTimer);
    const key = JSON.stringify(config);
    if (key !== this.#lastConfig) {
      this.#lastConfig = key;
      this.#listener({ type: "config", config });
    }
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) this.#listener(held);
  }
}

/** The services Consul knows (`/v1/catalog/services`), or undefined when it cannot say. */
async function knownServices(settings: AgentSettings): Promise<readonly string[] | undefined> {
  try {
    const answer = await blockingGet(settings, "/v1/catalog/services", 0, 0, new EventEmitter(), true);
    const body = answer.body;
    return body !== null && typeof body === "object" && !Array.isArray(body) ? Object.keys(body) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One blocking `/v1/health/service/:name`. An empty answer Consul marks as filtered by ACLs is a
 * failure, not an empty service: the token may not read the service (or the nodes it runs on), and
 * taking it for a scale-down to zero would drop every endpoint.
 */
async function healthQuery(settings: AgentSettings, service: string, index: number, waitSeconds: number, cancel: EventEmitter): Promise<BlockingAnswer> {
  const answer = await blockingGet(settings, `/v1/health/service/${encodeURIComponent(service)}`, index, waitSeconds, cancel, true);
  if (answer.filteredByAcls === true && Array.isArray(answer.body) && answer.body.length === 0) {
    throw new ConsulCallError(
      `the ACL token may not read service '${service}': Consul hid every instance (X-Consul-Results-Filtered-By-ACLs: true). ` +
        `Give the token service:read on "${service}" (a rule such as service "${service}" { policy = "read" }) and node:read on the nodes it runs on`,
    );
  }
  return answer;
}

/**
 * One blocking `GET /v1/config/:kind` (every entry of a kind), over undici: the consul client has no
 * config-entry calls.
 */
function configQuery(settings: AgentSettings, kind: ConsulEntryKind, index: number, waitSeconds: number, cancel: EventEmitter): Promise<BlockingAnswer> {
  return blockingGet(settings, `/v1/config/${kind}`, index, waitSeconds, cancel, true);
}

function tlsOptions(raw: unknown): ConsulTlsOptions | undefined {
  if (raw === undefined) return undefined;
  const o = expectOptions(raw, "consul.tls", ["ca", "cert", "key", "serverName"]) as ConsulTlsOptions;
  const pem = (v: unknown): boolean => typeof v === "string" || Buffer.isBuffer(v);
  if (o.ca !== undefined && !pem(o.ca) && !(Array.isArray(o.ca) && o.ca.every(pem))) throw invalidConfig("consul.tls.ca", "expected PEM text or a Buffer, or a list of them");
  for (const key of ["cert", "key"] as const) if (o[key] !== undefined && !pem(o[key])) throw invalidConfig(`consul.tls.${key}`, "expected PEM text or a Buffer");
  if ((o.cert === undefined) !== (o.key === undefined)) throw invalidConfig("consul.tls", "give cert and key together");
  if (o.serverName !== undefined && (typeof o.serverName !== "string" || o.serverName === "")) throw invalidConfig("consul.tls.serverName", "expected a host name");
  return o;
}

/** The TLS options of node:tls `connect` for these settings. */
function connectOptions(tls: ConsulTlsOptions | undefined): { ca?: (string | Buffer)[]; cert?: string | Buffer; key?: string | Buffer; servername?: string } {
  if (tls === undefined) return {};
  return {
    ...(tls.ca === undefined ? {} : { ca: Array.isArray(tls.ca) ? [...(tls.ca as readonly (string | Buffer)[])] : [tls.ca as string | Buffer] }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
  };
}

function sameOrder(a: EndpointSet, b: EndpointSet): boolean {
  return a.all.length === b.all.length && a.all.every((e, i) => e.id === b.all[i]?.id);
}
