import { Pool, type Dispatcher } from "undici";
import type { EndpointLoad } from "../../balancer/load.ts";
import type { Clock } from "../../core/clock.ts";

type Handler = Dispatcher.DispatchHandler & Record<string, unknown>;
type Method = (...args: unknown[]) => unknown;

/** Counts one request: in flight until it ends, round trip measured to the response headers. */
class Tracker {
  readonly #load: EndpointLoad;
  readonly #clock: Clock;
  readonly #start: number;
  #state = 0; // 0: waiting for headers, 1: headers seen, 2: done

  constructor(load: EndpointLoad, clock: Clock) {
    this.#load = load;
    this.#clock = clock;
    this.#start = clock.now();
    load.pending++;
  }

  headers(): void {
    if (this.#state !== 0) return;
    this.#state = 1;
    const now = this.#clock.now();
    this.#load.observe(now - this.#start, now);
  }

  done(): void {
    if (this.#state === 2) return;
    this.#state = 2;
    this.#load.pending--;
  }
}

function call(handler: Handler, name: string, args: unknown[]): unknown {
  const method = handler[name];
  return typeof method === "function" ? (method as Method).apply(handler, args) : undefined;
}

/** Wraps a handler of undici's older API (`onConnect`, `onHeaders`, `onComplete`, `onError`). */
class LegacyHandler {
  readonly #handler: Handler;
  readonly #tracker: Tracker;

  constructor(handler: Handler, tracker: Tracker) {
    this.#handler = handler;
    this.#tracker = tracker;
  }

  onConnect(...args: unknown[]): unknown {
    return call(this.#handler, "onConnect", args);
  }
  onHeaders(...args: unknown[]): unknown {
    this.#tracker.headers();
    return call(this.#handler, "onHeaders", args);
  }
  onData(...args: unknown[]): unknown {
    return call(this.#handler, "onData", args);
  }
  onComplete(...args: unknown[]): unknown {
    this.#tracker.done();
    return call(this.#handler, "onComplete", args);
  }
  onError(error: Error): unknown {
    this.#tracker.done();
    if (typeof this.#handler["onError" as keyof Handler] !== "function") throw error;
    return call(this.#handler, "onError", [error]);
  }
  onUpgrade(...args: unknown[]): unknown {
    this.#tracker.headers();
    this.#tracker.done();
    return call(this.#handler, "onUpgrade", args);
  }
  onResponseStarted(...args: unknown[]): unknown {
    return call(this.#handler, "onResponseStarted", args);
  }
  onBodySent(...args: unknown[]): unknown {
    return call(this.#handler, "onBodySent", args);
  }
  onRequestSent(...args: unknown[]): unknown {
    return call(this.#handler, "onRequestSent", args);
  }
}

/** Wraps a handler of undici's newer API (`onRequestStart`, `onResponseStart`, `onResponseEnd`, ...). */
class ControllerHandler {
  readonly #handler: Handler;
  readonly #tracker: Tracker;

  constructor(handler: Handler, tracker: Tracker) {
    this.#handler = handler;
    this.#tracker = tracker;
  }

  onRequestStart(...args: unknown[]): unknown {
    return call(this.#handler, "onRequestStart", args);
  }
  onRequestUpgrade(...args: unknown[]): unknown {
    this.#tracker.headers();
    this.#tracker.done();
    return call(this.#handler, "onRequestUpgrade", args);
  }
  onResponseStart(...args: unknown[]): unknown {
    this.#tracker.headers();
    return call(this.#handler, "onResponseStart", args);
  }
  onResponseData(...args: unknown[]): unknown {
    return call(this.#handler, "onResponseData", args);
  }
  onResponseEnd(...args: unknown[]): unknown {
    this.#tracker.done();
    return call(this.#handler, "onResponseEnd", args);
  }
  onResponseError(...args: unknown[]): unknown {
    this.#tracker.done();
    return call(this.#handler, "onResponseError", args);
  }
}

/**
 * An undici `Pool` that keeps an endpoint's load: every request dispatched through it (by `request`,
 * `fetch` or `dispatch`) counts as in flight until its response ends or fails, and its time to response
 * headers feeds the round-trip estimate. @internal
 */
export class LoadTrackingPool extends Pool {
  readonly #load: EndpointLoad;
  readonly #clock: Clock;

  /**
   * @param origin - the endpoint's origin
   * @param options - undici pool options
   * @param load - the endpoint's load, updated by every request
   * @param clock - the mesh's clock
   */
  constructor(origin: string, options: Pool.Options, load: EndpointLoad, clock: Clock) {
    super(origin, options);
    this.#load = load;
    this.#clock = clock;
  }

  /** Sends one request, counting it in the endpoint's load. */
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const h = handler as Handler;
    const tracker = new Tracker(this.#load, this.#clock);
    const wrapped = typeof h.onRequestStart === "function" ? new ControllerHandler(h, tracker) : new LegacyHandler(h, tracker);
    return super.dispatch(options, wrapped as unknown as Dispatcher.DispatchHandler);
  }
}
