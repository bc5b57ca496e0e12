import { Pool, type Dispatcher } from "undici";
import type { EndpointLoad } from "../../balancer/load.ts";
import type { Clock } from "../../core/clock.ts";

/** A handler of either undici API, as seen by the wrappers: every method optional. */
interface AnyHandler {
  onConnect?(abort: unknown, context: unknown): unknown;
  onHeaders?(statusCode: number, headers: unknown, resume: unknown, statusText: string): unknown;
  onData?(chunk: unknown): unknown;
  onComplete?(trailers: unknown): unknown;
  onError?(error: Error): unknown;
  onUpgrade?(statusCode: number, headers: unknown, socket: unknown): unknown;
  onResponseStarted?(): unknown;
  onBodySent?(chunk: unknown, totalBytesSent?: unknown): unknown;
  onRequestSent?(): unknown;
  onRequestStart?(controller: unknown, context: unknown): unknown;
  onRequestUpgrade?(controller: unknown, statusCode: number, headers: unknown, socket: unknown): unknown;
  onResponseStart?(controller: unknown, statusCode: number, headers: unknown, statusMessage: unknown): unknown;
  onResponseData?(controller: unknown, chunk: unknown): unknown;
  onResponseEnd?(controller: unknown, trailers: unknown): unknown;
  onResponseError?(controller: unknown, error: Error): unknown;
}

/** Counts one request in an endpoint's load: in flight until it ends, round trip to the response headers. */
class Tracked {
  protected readonly handler: AnyHandler;
  readonly #load: EndpointLoad;
  readonly #clock: Clock;
  readonly #start: number;
  #state = 0; // 0: waiting for headers, 1: headers seen, 2: done

  constructor(handler: AnyHandler, load: EndpointLoad, clock: Clock) {
    this.handler = handler;
    this.#load = load;
    this.#clock = clock;
    this.#start = clock.now();
    load.pending++;
  }

  protected headers(): void {
    if (this.#state !== 0) return;
    this.#state = 1;
    const now = this.#clock.now();
    this.#load.observe(now - this.#start, now);
  }

  protected done(): void {
    if (this.#state === 2) return;
    this.#state = 2;
    this.#load.pending--;
  }

  /** The request failed: before any response, that is a penalty sample unless the caller aborted it. */
  protected failed(error: Error): void {
    if (this.#state === 0 && !isCallerAbort(error)) {
      const now = this.#clock.now();
      this.#load.fail(now - this.#start, now);
    }
    this.done();
  }
}

/** Whether an error is the caller giving up (an AbortSignal), which says nothing about the endpoint. */
function isCallerAbort(error: Error): boolean {
  return error.name === "AbortError" || (error as { code?: unknown }).code === "UND_ERR_ABORTED";
}

/** Wraps a handler of undici's older API (`onConnect`, `onHeaders`, `onData`, `onComplete`, `onError`). */
class LegacyHandler extends Tracked {
  onConnect(abort: unknown, context: unknown): unknown {
    return this.handler.onConnect?.(abort, context);
  }
  onHeaders(statusCode: number, headers: unknown, resume: unknown, statusText: string): unknown {
    this.headers();
    return this.handler.onHeaders?.(statusCode, headers, resume, statusText);
  }
  onData(chunk: unknown): unknown {
    return this.handler.onData?.(chunk);
  }
  onComplete(trailers: unknown): unknown {
    this.done();
    return this.handler.onComplete?.(trailers);
  }
  onError(error: Error): unknown {
    this.failed(error);
    if (this.handler.onError === undefined) throw error;
    return this.handler.onError(error);
  }
  onResponseStarted(): unknown {
    return this.handler.onResponseStarted?.();
  }
  onBodySent(chunk: unknown, totalBytesSent?: unknown): unknown {
    return this.handler.onBodySent?.(chunk, totalBytesSent);
  }
  onRequestSent(): unknown {
    return this.handler.onRequestSent?.();
  }
}

/** Wraps a handler of undici's newer API (`onRequestStart`, `onResponseStart`, `onResponseEnd`, ...). */
class ControllerHandler extends Tracked {
  onRequestStart(controller: unknown, context: unknown): unknown {
    return this.handler.onRequestStart?.(controller, context);
  }
  onResponseStart(controller: unknown, statusCode: number, headers: unknown, statusMessage: unknown): unknown {
    this.headers();
    return this.handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }
  onResponseData(controller: unknown, chunk: unknown): unknown {
    return this.handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: unknown, trailers: unknown): unknown {
    this.done();
    return this.handler.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: unknown, error: Error): unknown {
    this.failed(error);
    return this.handler.onResponseError?.(controller, error);
  }
  onResponseStarted(): unknown {
    return this.handler.onResponseStarted?.();
  }
}

/**
 * An undici `Pool` that keeps an endpoint's load: every request dispatched through it (by `request`,
 * `fetch` or `dispatch`) counts as in flight until its response ends or fails, and its time to response
 * headers feeds the round-trip estimate. One small object per request wraps the caller's handler.
 * @internal
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
    // Upgrades and CONNECT hand over a socket rather than a response: not load, and undici must see the
    // caller's own handler to check it has onUpgrade.
    if (options.upgrade != null || options.method === "CONNECT") return super.dispatch(options, handler);
    const h = handler as AnyHandler;
    const wrapped = h.onRequestStart === undefined ? new LegacyHandler(h, this.#load, this.#clock) : new ControllerHandler(h, this.#load, this.#clock);
    return super.dispatch(options, wrapped as Dispatcher.DispatchHandler);
  }
}
