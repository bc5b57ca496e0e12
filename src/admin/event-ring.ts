import type { EventEmitter } from "node:events";
import type { MeshEvents } from "../telemetry/mesh-events.ts";

/** One event the admin server keeps, as JSON: what happened, to which service, when. */
export interface AdminEvent {
  /** Its place in the feed: increases by one per event, so a reader asks for those after the last it saw. */
  readonly seq: number;
  /** When it happened (wall clock, ISO 8601); for a repeated event, when it last happened. */
  readonly at: string;
  /** The mesh event's name: `endpoint_ejected`, `breaker_state_changed`, `config_rejected`, ... */
  readonly type: keyof MeshEvents;
  /** The upstream service it concerns; for `inbound_denied`, `""` (the caller and status are in `detail`). */
  readonly service: string;
  /** How many times it happened: a repeated event (a burst: see docs/admin.md) is one entry, moved to the end. */
  readonly count: number;
  /** The event's facts (the latest, for a repeated one): plain JSON, errors as their code and message. */
  readonly detail: Readonly<Record<string, unknown>>;
}

/** The events worth showing an operator (endpoints_changed is summarised: how many came and went). */
const TYPES: readonly (keyof MeshEvents)[] = [
  "endpoints_changed",
  "config_applied",
  "config_rejected",
  "registry_error",
  "endpoint_ejected",
  "endpoint_returned",
  "breaker_state_changed",
  "retry_budget_exhausted",
  "inbound_denied",
];

/**
 * The mesh's recent events, at most `capacity` of them, oldest first: the admin server's feed. Events
 * that come in bursts (a retry budget refusing retry after retry, inbound requests denied one after
 * another) are folded per service (per status and caller, for denials): a repeat updates its entry's
 * count, time and detail and moves it to the end with a new `seq`, so a storm holds one entry per
 * source and pushes nothing else out. It listens to the mesh's events only: the request path pays
 * nothing for it while no such event fires. @internal
 */
export class EventRing {
  readonly #capacity: number;
  /** By key: insertion order is the feed's order (a repeat is deleted and set again, to the end). */
  readonly #entries = new Map<string, AdminEvent>();
  readonly #now: () => Date;
  #seq = 0;
  readonly #unsubscribe: () => void;

  /**
   * @param events - the mesh to listen to
   * @param capacity - the most entries kept
   * @param now - the wall clock
   */
  constructor(events: EventEmitter<MeshEvents>, capacity: number, now: () => Date = () => new Date()) {
    this.#capacity = capacity;
    this.#now = now;
    const listeners = TYPES.map((type) => {
      const listener = (event: object): void => this.#add(type, event);
      events.on(type, listener);
      return [type, listener] as const;
    });
    this.#unsubscribe = () => {
      for (const [type, listener] of listeners) events.off(type, listener);
    };
  }

  /** At most `limit` entries after `since` (a `seq`), oldest first. */
  since(since: number, limit: number): readonly AdminEvent[] {
    const out: AdminEvent[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.seq <= since) continue;
      out.push(entry);
      if (out.length === limit) break;
    }
    return out;
  }

  /** Stops listening. */
  close(): void {
    this.#unsubscribe();
  }

  #add(type: keyof MeshEvents, event: object): void {
    const { service, ...rest } = event as { service?: unknown };
    const name = typeof service === "string" ? service : "";
    const at = this.#now().toISOString();
    const detail = detailOf(type, rest);
    const key = keyOf(type, name, detail) ?? `#${String(this.#seq + 1)}`;
    const previous = this.#entries.get(key);
    this.#entries.delete(key);
    this.#entries.set(key, { seq: ++this.#seq, at, type, service: name, count: (previous?.count ?? 0) + 1, detail });
    if (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
  }
}

/** The key a burst of an event folds under, or undefined for an event kept on its own. */
function keyOf(type: keyof MeshEvents, service: string, detail: Readonly<Record<string, unknown>>): string | undefined {
  if (type === "retry_budget_exhausted") return `${type}|${service}`;
  if (type === "inbound_denied") return `${type}|${String(detail.status)}|${String(detail.caller)}`;
  return undefined;
}

/** An event's facts as JSON: errors by code and message, an endpoint set by its size and what changed. */
function detailOf(type: keyof MeshEvents, rest: Record<string, unknown>): Record<string, unknown> {
  if (type === "endpoints_changed") {
    const diff = rest.diff as { added?: readonly unknown[]; removed?: readonly unknown[]; changed?: readonly unknown[] } | undefined;
    const endpoints = rest.endpoints as { size?: number } | undefined;
    return { endpoints: endpoints?.size ?? 0, added: diff?.added?.length ?? 0, removed: diff?.removed?.length ?? 0, changed: diff?.changed?.length ?? 0 };
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) out[key] = value instanceof Error ? errorJson(value) : value;
  return out;
}

/** An error as the admin server shows it: its code (if any) and message, never its stack or cause. */
function errorJson(error: Error): { readonly code: string | undefined; readonly message: string } {
  const code = (error as { code?: unknown }).code;
  return { code: typeof code === "string" ? code : undefined, message: error.message };
}
