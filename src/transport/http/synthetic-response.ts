import { Dispatcher } from "undici";

interface AnyHandler {
  onRequestStart?(controller: unknown, context: unknown): unknown;
  onResponseStart?(controller: unknown, statusCode: number, headers: Record<string, string>, statusMessage: string): unknown;
  onResponseData?(controller: unknown, chunk: Buffer): unknown;
  onResponseEnd?(controller: unknown, trailers: Record<string, string>): unknown;
  onConnect?(abort: (reason?: Error) => void, context: unknown): unknown;
  onHeaders?(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): unknown;
  onData?(chunk: Buffer): unknown;
  onComplete?(trailers: Buffer[]): unknown;
}

const controller = {
  abort(): void {},
  pause(): void {},
  resume(): void {},
  aborted: false,
  paused: false,
  reason: null,
};

/**
 * Answers an undici dispatch handler (either handler API) with a response made here, without any
 * network: the status, headers and body given. Used for injected faults. @internal
 */
export function respondWith(handler: Dispatcher.DispatchHandler, status: number, headers: Readonly<Record<string, string>>, body: string): void {
  const h = handler as unknown as AnyHandler;
  const chunk = Buffer.from(body);
  const all = { ...headers, "content-length": String(chunk.length) };
  if (typeof h.onResponseStart === "function") {
    h.onRequestStart?.(controller, {});
    h.onResponseStart(controller, status, all, "");
    if (chunk.length > 0) h.onResponseData?.(controller, chunk);
    h.onResponseEnd?.(controller, {});
    return;
  }
  h.onConnect?.(() => {}, {});
  h.onHeaders?.(
    status,
    Object.entries(all).flatMap(([k, v]) => [Buffer.from(k), Buffer.from(v)]),
    () => {},
    "",
  );
  if (chunk.length > 0) h.onData?.(chunk);
  h.onComplete?.([]);
}

/** A Dispatcher that answers every request itself with one response (its `request()` gives undici's usual ResponseData). @internal */
export class SyntheticDispatcher extends Dispatcher {
  readonly #status: number;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #body: string;

  constructor(status: number, headers: Readonly<Record<string, string>>, body: string) {
    super();
    this.#status = status;
    this.#headers = headers;
    this.#body = body;
  }

  /** Answers at once. */
  override dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    queueMicrotask(() => respondWith(handler, this.#status, this.#headers, this.#body));
    return true;
  }
}
