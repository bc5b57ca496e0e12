import type { Duplex } from "node:stream";
import { util, type Dispatcher } from "undici";

/** undici's classic handler API, the one its pools call (and `fetch` implements). @internal */
export interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: object): void;
  onResponseStarted?(): void;
  onHeaders?(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[] | null): void;
  onError?(error: Error): void;
  onUpgrade?(status: number, raw: Buffer[] | string[] | null, socket: Duplex): void;
}

/** undici's controller-based handler API, seen from the handler's side. */
interface ControllerHandler {
  onRequestStart?(controller: AdapterController, context: unknown): void;
  onRequestUpgrade?(controller: AdapterController, status: number, headers: Record<string, string | string[] | undefined>, socket: Duplex): void;
  onResponseStart?(controller: AdapterController, status: number, headers: Record<string, string | string[] | undefined>, statusText: string): void;
  onResponseData?(controller: AdapterController, chunk: Buffer): void;
  onResponseEnd?(controller: AdapterController, trailers: Record<string, string | string[] | undefined>): void;
  onResponseError?(controller: AdapterController | null, error: Error): void;
}

/** The controller a controller-API handler gets: pause, resume and abort of the winning attempt. */
class AdapterController {
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  readonly #abort: (reason?: Error) => void;
  resumeAttempt: (() => void) | undefined;
  rawHeaders: Buffer[] | null = null;
  rawTrailers: Buffer[] | null = null;

  constructor(abort: (reason?: Error) => void) {
    this.#abort = abort;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.resumeAttempt?.();
  }

  abort(reason?: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ?? null;
    this.#abort(reason);
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  get paused(): boolean {
    return this.#paused;
  }
}

/** Lets a controller-API handler be driven through the classic API (as undici's own pools do). */
class ControllerAdapter implements LegacyHandler {
  readonly #handler: ControllerHandler;
  #controller: AdapterController | null = null;

  constructor(handler: ControllerHandler) {
    this.#handler = handler;
  }

  onConnect(abort: (reason?: Error) => void, context?: object): void {
    this.#controller = new AdapterController(abort);
    this.#handler.onRequestStart?.(this.#controller, context);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const controller = this.#controller as AdapterController;
    controller.resumeAttempt = resume;
    controller.rawHeaders = raw;
    this.#handler.onResponseStart?.(controller, status, util.parseHeaders(raw), statusText);
    return !controller.paused;
  }

  onData(chunk: Buffer): boolean {
    const controller = this.#controller as AdapterController;
    this.#handler.onResponseData?.(controller, chunk);
    return !controller.paused;
  }

  onComplete(trailers: Buffer[] | null): void {
    const controller = this.#controller as AdapterController;
    controller.rawTrailers = trailers;
    this.#handler.onResponseEnd?.(controller, util.parseHeaders(trailers ?? []));
  }

  onError(error: Error): void {
    if (this.#handler.onResponseError === undefined) throw error;
    this.#handler.onResponseError(this.#controller, error);
  }

  onUpgrade(status: number, raw: Buffer[] | string[] | null, socket: Duplex): void {
    const controller = this.#controller as AdapterController;
    this.#handler.onRequestUpgrade?.(controller, status, util.parseHeaders(raw ?? []), socket);
  }
}

/** A handler of either undici API, as a classic one. @internal */
export function classic(handler: Dispatcher.DispatchHandler): LegacyHandler {
  const h = handler as ControllerHandler & LegacyHandler;
  return typeof h.onRequestStart === "function" ? new ControllerAdapter(h) : h;
}
