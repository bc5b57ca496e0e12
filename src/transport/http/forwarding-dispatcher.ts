import { Dispatcher } from "undici";

/** Delivers an error to an undici dispatch handler of either handler API. @internal */
export function failHandler(handler: Dispatcher.DispatchHandler, error: Error): void {
  const h = handler as unknown as {
    onResponseError?: (controller: null, error: Error) => void;
    onError?: (error: Error) => void;
  };
  if (typeof h.onResponseError === "function") h.onResponseError(null, error);
  else if (typeof h.onError === "function") h.onError(error);
  else throw error;
}

/**
 * An undici `Dispatcher` whose `dispatch` and `close` are given functions. It inherits `request`,
 * `stream`, `pipeline` and the rest from undici, so it plugs into `fetch`, `undici.request` and
 * `setGlobalDispatcher`. @internal
 */
export class ForwardingDispatcher extends Dispatcher {
  readonly #dispatch: (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => boolean;
  readonly #close: () => Promise<void>;
  readonly #destroy: (error: Error | undefined) => Promise<void>;

  /**
   * @param dispatch - sends one request
   * @param close - what `close()` does
   * @param destroy - what `destroy()` does; `close` when not given
   */
  constructor(
    dispatch: (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => boolean,
    close: () => Promise<void>,
    destroy?: (error: Error | undefined) => Promise<void>,
  ) {
    super();
    this.#dispatch = dispatch;
    this.#close = close;
    this.#destroy = destroy ?? close;
  }

  /** Sends one request through the mesh. */
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#dispatch(options, handler);
  }

  /** Closes the mesh: requests in flight finish, then every pool closes. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const closing = this.#close();
    if (callback === undefined) return closing;
    closing.then(callback, callback);
  }

  /** Destroys the mesh: requests in flight are aborted with `err` and every connection closes now. */
  override destroy(err?: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const callback = typeof a === "function" ? a : b;
    const error = typeof a === "function" || a === null ? undefined : a;
    const destroying = this.#destroy(error);
    if (callback === undefined) return destroying;
    destroying.then(callback, callback);
  }
}
