import { Dispatcher } from "undici";
import { failHandler } from "./forwarding-dispatcher.ts";

/**
 * A dispatcher that fails every request with one error and no I/O: the pool of an endpoint the mesh may
 * not use (a plaintext endpoint when mTLS is required). @internal
 */
export class RefusingDispatcher extends Dispatcher {
  readonly #error: Error;
  #closed = false;

  constructor(error: Error) {
    super();
    this.#error = error;
  }

  /** Fails the request at once. */
  override dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    queueMicrotask(() => failHandler(handler, this.#error));
    return true;
  }

  /** Nothing to close. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    if (callback === undefined) return Promise.resolve();
    queueMicrotask(callback);
  }

  /** Nothing to destroy. */
  override destroy(err?: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    this.#closed = true;
    const callback = typeof a === "function" ? a : b;
    if (callback === undefined) return Promise.resolve();
    queueMicrotask(callback);
  }

  /** Whether close or destroy was called. */
  get destroyed(): boolean {
    return this.#closed;
  }
}
