import { request, type Dispatcher } from "undici";
import type { Clock, TimerHandle } from "../../core/clock.ts";
import { invalidConfig, MeshError } from "../../core/errors.ts";
import { assertServiceName } from "../../core/service-name.ts";
import type { CheckDefinition, Registration, ServiceRegistration } from "../registration.ts";
import { ConsulCallError, readAnswer, statusFailure, transportFailure, type AnswerLimits } from "./consul-answer.ts";

/** What a Consul registration needs from its registry. @internal */
export interface ConsulAgentContext {
  readonly url: string;
  readonly token: string | undefined;
  readonly clock: Clock;
  /** How much of an answer is read at most. */
  readonly limits: AnswerLimits;
  /** The registry's own connections to the agent, for what a caller waits on (register, deregister). */
  readonly dispatcher: Dispatcher;
  /** Its connections that never keep the process alive, for the heartbeats and checks of a running registration. */
  readonly background: Dispatcher;
  /** Reported when a heartbeat or a restore fails; the registration keeps trying. */
  readonly onError: (error: Error) => void;
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT";
}

/** How long one call to the agent may take (register, deregister, a heartbeat): a hung agent does not hang the caller. */
const AGENT_TIMEOUT_MS = 10_000;

const seconds = (ms: number): string => `${Math.max(1, Math.round(ms / 1000))}s`;

/**
 * Deregistrations started by a signal and not yet finished, across every registration in the process:
 * the signal is re-raised only when the last one is done, so none is cut short.
 */
let signalDeregistrations = 0;

function checkBody(check: CheckDefinition): Record<string, unknown> {
  const kinds = (["http", "tcp", "grpc", "ttl"] as const).filter((k) => check[k] !== undefined);
  if (kinds.length !== 1) throw invalidConfig("registration.check", `give exactly one of http, tcp, grpc or ttl, got ${kinds.join(", ") || "none"}`);
  const body: Record<string, unknown> = {};
  if (check.ttl !== undefined) {
    if (!(check.ttl >= 1000)) throw invalidConfig("registration.check.ttl", `expected at least 1000 ms, got ${check.ttl}`);
    body.TTL = seconds(check.ttl);
    // A TTL check starts critical in Consul; the first heartbeat goes right after registration.
  } else {
    if (check.http !== undefined) body.HTTP = check.http;
    if (check.tcp !== undefined) body.TCP = check.tcp;
    if (check.grpc !== undefined) body.GRPC = check.grpc;
    body.Interval = seconds(check.interval ?? 10_000);
  }
  if (check.timeout !== undefined) body.Timeout = seconds(check.timeout);
  if (check.deregisterCriticalServiceAfter !== undefined) body.DeregisterCriticalServiceAfter = seconds(check.deregisterCriticalServiceAfter);
  return body;
}

/**
 * Builds the body of `PUT /v1/agent/service/register`. Validated here, so a mistake is a clear error
 * before anything is sent. @internal
 */
export function registrationBody(r: ServiceRegistration): { readonly id: string; readonly body: Record<string, unknown> } {
  assertServiceName(r.name);
  if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw invalidConfig("registration.port", `expected a port from 1 to 65535, got ${String(r.port)}`);
  const id = r.id ?? `${r.name}-${r.address ?? "node"}-${r.port}`;
  const body: Record<string, unknown> = { ID: id, Name: r.name, Port: r.port, Tags: [...(r.tags ?? [])], Meta: { ...r.meta } };
  if (r.address !== undefined) body.Address = r.address;
  if (r.weights !== undefined) {
    if (!(r.weights.passing > 0) || !(r.weights.warning >= 0)) throw invalidConfig("registration.weights", "passing must be > 0 and warning >= 0");
    body.Weights = { Passing: r.weights.passing, Warning: r.weights.warning };
  }
  if (r.check !== undefined) body.Check = checkBody(r.check);
  if (r.connectNative === true) body.Connect = { Native: true };
  return { id, body };
}

/**
 * One instance registered with the local Consul agent. The `consul` client drops `Weights` when it
 * registers, so registration calls the agent's HTTP API directly. A TTL check gets a heartbeat every
 * third of its TTL; any registration is checked for at that pace (every 30 s without a TTL), and put back
 * if the agent has forgotten it (restarted with no data). @internal
 */
export class ConsulRegistration implements Registration {
  readonly id: string;
  readonly #body: Record<string, unknown>;
  readonly #ctx: ConsulAgentContext;
  readonly #period: number;
  readonly #ttl: boolean;
  #timer: TimerHandle;
  #stopped = false;
  #deregistering: Promise<void> | undefined;
  /** The register call in flight (first registration or a restore): deregistration waits for it. */
  #registering: Promise<unknown> = Promise.resolve();
  readonly #onSignal: ((signal: NodeJS.Signals) => void) | undefined;

  private constructor(registration: ServiceRegistration, ctx: ConsulAgentContext) {
    const { id, body } = registrationBody(registration);
    this.id = id;
    this.#body = body;
    this.#ctx = ctx;
    this.#ttl = registration.check?.ttl !== undefined;
    this.#period = this.#ttl ? Math.max(250, (registration.check?.ttl ?? 0) / 3) : 30_000;
    if (registration.deregisterOnSignals === true) {
      const onSignal = (signal: NodeJS.Signals): void => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        signalDeregistrations++;
        void this.deregister()
          .catch(() => undefined)
          .finally(() => {
            // Do what the signal would have done, once every deregistration it started is done, unless
            // the application handles the signal itself.
            if (--signalDeregistrations === 0 && process.listenerCount(signal) === 0) process.kill(process.pid, signal);
          });
      };
      this.#onSignal = onSignal;
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
  }

  /**
   * Registers the instance, sends the first heartbeat, and starts the maintenance loop.
   *
   * @throws MeshError `ERR_INVALID_CONFIG` when the agent refuses the registration (its reason quoted),
   *   `ERR_REGISTRY_UNAVAILABLE` when the agent cannot be reached
   */
  static async create(registration: ServiceRegistration, ctx: ConsulAgentContext): Promise<ConsulRegistration> {
    const r = new ConsulRegistration(registration, ctx);
    try {
      await r.#register();
      // The first heartbeat is part of what the caller waits for: on the connections that hold the process.
      if (r.#ttl) await r.#heartbeat(false);
    } catch (err) {
      r.#stop();
      throw err;
    }
    r.#schedule();
    return r;
  }

  /**
   * Removes the instance from the agent and stops its heartbeats, after any register call in flight
   * (so the deregistration cannot arrive first). Idempotent; after a failure, a later call tries again.
   */
  deregister(): Promise<void> {
    return (this.#deregistering ??= (async () => {
      this.#stop();
      await this.#registering.catch(() => undefined);
      try {
        // 404: the agent does not have it (it restarted, or it was removed by hand), which is what deregistering asks.
        await this.#call("PUT", `/v1/agent/service/deregister/${encodeURIComponent(this.id)}`, undefined, [404]);
      } catch (err) {
        this.#deregistering = undefined;
        throw err;
      }
    })());
  }

  #stop(): void {
    this.#stopped = true;
    this.#ctx.clock.clearTimeout(this.#timer);
    if (this.#onSignal !== undefined) {
      process.off("SIGTERM", this.#onSignal);
      process.off("SIGINT", this.#onSignal);
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#ctx.clock.setTimeout(() => void this.#maintain(), this.#period);
  }

  async #maintain(): Promise<void> {
    try {
      if (this.#ttl) await this.#heartbeat();
      else if ((await this.#call("GET", `/v1/agent/service/${encodeURIComponent(this.id)}`, undefined, [404], true)) === 404) await this.#restore();
    } catch (err) {
      this.#ctx.onError(err instanceof Error ? err : new Error(String(err)));
    }
    this.#schedule();
  }

  async #heartbeat(background = true): Promise<void> {
    const status = await this.#call("PUT", `/v1/agent/check/pass/service:${encodeURIComponent(this.id)}`, undefined, [404], background);
    if (status === 404) {
      await this.#restore();
      await this.#call("PUT", `/v1/agent/check/pass/service:${encodeURIComponent(this.id)}`, undefined, [], background);
    }
  }

  async #restore(): Promise<void> {
    if (this.#stopped) return;
    await this.#register(true);
    this.#ctx.onError(new Error(`Consul at ${this.#ctx.url} had forgotten instance '${this.id}'; registered it again`));
  }

  #register(background = false): Promise<number> {
    const registering = this.#call("PUT", "/v1/agent/service/register", JSON.stringify(this.#body), [], background);
    this.#registering = registering;
    return registering;
  }

  /**
   * Calls the agent; a status in `allowed` is returned, any other non-2xx throws. Every call made here
   * (register, deregister, check pass, read) is idempotent in Consul, so a connection that fails before
   * any response (a kept-alive socket the agent closed when it restarted) is retried once. A hung agent
   * gets 10 s per call, and no second try. `background`: the heartbeats and checks of a running registration, on connections
   * that never keep the process alive.
   */
  async #call(method: "GET" | "PUT", path: string, body?: string, allowed: readonly number[] = [], background = false): Promise<number> {
    const send = () =>
      request(`${this.#ctx.url}${path}`, {
        method,
        ...(body === undefined ? {} : { body }),
        dispatcher: background ? this.#ctx.background : this.#ctx.dispatcher,
        headersTimeout: AGENT_TIMEOUT_MS,
        bodyTimeout: AGENT_TIMEOUT_MS,
        headers: this.#ctx.token === undefined ? {} : { "x-consul-token": this.#ctx.token },
      });
    // Every failure is a MeshError whose cause is plain data (message, status, code): nothing reached
    // from it holds the request, whose headers hold the ACL token.
    const token = this.#ctx.token;
    let res;
    try {
      // Once, and only when the connection failed before any answer: a hung agent is not given twice the time.
      res = await send().catch((err: unknown) => (isTimeout(err) ? Promise.reject(err as Error) : send()));
    } catch (err) {
      const plain = transportFailure(err, token);
      throw new MeshError("ERR_REGISTRY_UNAVAILABLE", `Consul at ${this.#ctx.url} is unreachable: ${plain.message}`, { cause: plain });
    }
    let bytes: Buffer;
    try {
      bytes = await readAnswer(res, this.#ctx.limits, false);
    } catch (err) {
      const plain = err instanceof ConsulCallError ? err : transportFailure(err, token);
      throw new MeshError("ERR_REGISTRY_UNAVAILABLE", `Consul at ${this.#ctx.url} answered ${res.statusCode} to ${method} ${path}, but ${plain.message}`, { cause: plain });
    }
    if ((res.statusCode >= 200 && res.statusCode < 300) || allowed.includes(res.statusCode)) return res.statusCode;
    const text = statusFailure(res.statusCode, bytes, token).message;
    if (res.statusCode === 400) {
      throw new MeshError("ERR_INVALID_CONFIG", `Consul at ${this.#ctx.url} refused the registration of '${this.id}': ${text}`, {
        details: { field: "registration" },
      });
    }
    const hint = res.statusCode === 403 ? "; check the ACL token" : "";
    throw new MeshError("ERR_REGISTRY_UNAVAILABLE", `Consul at ${this.#ctx.url} answered ${res.statusCode} to ${method} ${path}: ${text}${hint}`);
  }
}
