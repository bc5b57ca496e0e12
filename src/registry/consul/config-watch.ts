import type { EventEmitter } from "node:events";
import { CONSUL_ENTRY_KINDS, decodeConsulEntry, type ConsulEntryKind } from "../../config/decode-consul.ts";
import type { ServiceConfig } from "../../config/service-config.ts";
import { BlockingLoop, type BlockingAnswer, type LoopSettings } from "./blocking-loop.ts";

/** Fetches one blocking `GET /v1/config/:kind` (every entry of the kind). @internal */
export type KindFetch = (kind: ConsulEntryKind, index: number, waitSeconds: number, cancel: EventEmitter) => Promise<BlockingAnswer>;

/** What one watched service hears from the config watch. @internal */
export interface ConfigSubscriber {
  /** The service's whole config, after any of its entries changed (and once when the watch is ready). */
  config(config: ServiceConfig): void;
  /** An entry of the service could not be used, or the watch failed; the last good config stays. */
  error(error: Error): void;
}

interface KindState {
  readonly loop: BlockingLoop;
  /** Whether the kind has answered, or failed, at least once. */
  settled: boolean;
  /** The raw JSON of each entry seen, by service, to skip unchanged ones. */
  readonly raw: Map<string, string>;
  /** The last good part of the config each entry gave, by service. */
  readonly parts: Map<string, ServiceConfig>;
}

/**
 * Watches Consul's `service-router`, `service-splitter`, `service-resolver` and `service-defaults`
 * entries with one blocking list query per kind, shared by every watched service (four connections in
 * all, however many services are in use), and tells each service its config. An entry that does not
 * decode or validate is reported to its service and its last good version stays in force. @internal
 */
export class ConfigWatch {
  readonly #kinds = new Map<ConsulEntryKind, KindState>();
  readonly #subscribers = new Map<string, Set<ConfigSubscriber>>();
  readonly #settings: LoopSettings;
  readonly #fetch: KindFetch;

  constructor(settings: LoopSettings, fetch: KindFetch) {
    this.#settings = settings;
    this.#fetch = fetch;
  }

  /** True once every kind has answered (or failed) once: a service's config is then as known as it will be. */
  get settled(): boolean {
    return this.#kinds.size === CONSUL_ENTRY_KINDS.length && [...this.#kinds.values()].every((k) => k.settled);
  }

  /** The kinds that have not answered (nor failed) yet. */
  get pendingKinds(): ConsulEntryKind[] {
    return CONSUL_ENTRY_KINDS.filter((k) => this.#kinds.get(k)?.settled !== true);
  }

  /**
   * Starts telling `subscriber` about `service`; the loops start with the first subscriber.
   *
   * @returns a function that stops it (the loops stop with the last subscriber)
   */
  subscribe(service: string, subscriber: ConfigSubscriber): () => void {
    let set = this.#subscribers.get(service);
    if (set === undefined) this.#subscribers.set(service, (set = new Set()));
    set.add(subscriber);
    if (this.#kinds.size === 0) this.#start();
    else if (this.settled) subscriber.config(this.#configOf(service));
    return () => {
      set.delete(subscriber);
      if (set.size === 0) this.#subscribers.delete(service);
      if (this.#subscribers.size === 0) this.#stop();
    };
  }

  #start(): void {
    for (const kind of CONSUL_ENTRY_KINDS) {
      const state: KindState = {
        settled: false,
        raw: new Map(),
        parts: new Map(),
        loop: new BlockingLoop(
          `the ${kind} entries`,
          this.#settings,
          (index, wait, cancel) => this.#fetch(kind, index, wait, cancel),
          (body) => this.#accept(kind, body),
          (error) => this.#failed(kind, error),
        ),
      };
      this.#kinds.set(kind, state);
    }
    for (const state of this.#kinds.values()) state.loop.start();
  }

  #stop(): void {
    for (const state of this.#kinds.values()) state.loop.stop();
    this.#kinds.clear();
  }

  #accept(kind: ConsulEntryKind, body: unknown): void {
    const state = this.#kinds.get(kind);
    if (state === undefined) return;
    if (!Array.isArray(body)) throw new Error(`expected a list of ${kind} entries, got ${body === null ? "null" : typeof body}`);
    const changed = new Set<string>();
    const seen = new Set<string>();
    const problems: [string, Error][] = [];
    for (const entry of body as unknown[]) {
      const name = (entry as { Name?: unknown } | null)?.Name;
      const namespace = (entry as { Namespace?: unknown } | null)?.Namespace;
      if (typeof name !== "string" || (namespace !== undefined && namespace !== "" && namespace !== "default")) continue;
      seen.add(name);
      // The indexes change on every write, even one that changes nothing else.
      const raw = JSON.stringify(entry, (key, value: unknown) => (key === "CreateIndex" || key === "ModifyIndex" ? undefined : value));
      if (state.raw.get(name) === raw) continue;
      state.raw.set(name, raw);
      try {
        state.parts.set(name, decodeConsulEntry(entry).config);
        changed.add(name);
      } catch (err) {
        problems.push([name, err as Error]);
      }
    }
    for (const name of [...state.raw.keys()]) {
      if (seen.has(name)) continue;
      state.raw.delete(name);
      if (state.parts.delete(name)) changed.add(name);
    }
    const wasSettled = this.settled;
    state.settled = true;
    for (const [name, error] of problems) for (const s of this.#subscribers.get(name) ?? []) s.error(error);
    if (!wasSettled && this.settled) {
      for (const [service, set] of this.#subscribers) for (const s of set) s.config(this.#configOf(service));
    } else if (this.settled) {
      for (const name of changed) for (const s of this.#subscribers.get(name) ?? []) s.config(this.#configOf(name));
    }
  }

  #failed(kind: ConsulEntryKind, error: Error): void {
    const state = this.#kinds.get(kind);
    if (state === undefined) return;
    const wasSettled = this.settled;
    state.settled = true;
    for (const set of this.#subscribers.values()) for (const s of set) s.error(error);
    if (!wasSettled && this.settled) {
      for (const [service, set] of this.#subscribers) for (const s of set) s.config(this.#configOf(service));
    }
  }

  #configOf(service: string): ServiceConfig {
    let config: ServiceConfig = {};
    for (const state of this.#kinds.values()) config = { ...config, ...state.parts.get(service) };
    return config;
  }
}
