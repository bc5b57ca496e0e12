import type { Dispatcher } from "undici";

/**
 * How much of an answer the registry reads from Consul, at most. @internal
 *
 * - `maxResponseBytes`, default 64 MiB: a realistic `/v1/health/service/:name` answer is about 1.7 KB
 *   per instance (node, service, a serf and a service check, as Consul 1.17 lists them), so 10,000
 *   instances make 17 MB; the cap leaves nearly four times that. Consul itself sets no limit on an
 *   answer's size, so a hostile or broken agent (or whatever answers in its place) could send without
 *   end: the body is read in a stream and cut at the cap, never held whole first.
 * - `maxResponseDepth`, default 64: the deepest structure Consul sends is a config entry (a
 *   service-router's `Routes[].Match.HTTP.Header[]` or an intention's `Permissions[].HTTP.Header[]`:
 *   about 7 levels), and opaque maps (`Meta`) hold strings. Every decoder after `JSON.parse` walks the
 *   answer recursively, so a body nested a million deep would overflow the stack: the depth is counted
 *   while the bytes arrive, before anything parses them.
 */
export interface AnswerLimits {
  /** The most bytes a body may have. */
  readonly maxResponseBytes: number;
  /** The deepest nesting of JSON arrays and objects a body may have. */
  readonly maxResponseDepth: number;
}

/** The default of `maxResponseBytes`: 64 MiB. @internal */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** The default of `maxResponseDepth`. @internal */
export const DEFAULT_MAX_RESPONSE_DEPTH = 64;

/** The longest part of a body quoted in an error message: Consul's own messages are far shorter. */
const QUOTED_CHARS = 300;

/**
 * A failure to talk to Consul, as plain data: a message, and the HTTP status or the transport's error
 * code. It holds no request, response or socket (the `consul` npm client's errors held the request, and
 * the ACL token in its headers with it), so nothing reached from it carries the token. @internal
 */
export class ConsulCallError extends Error {
  override readonly name = "ConsulCallError";
  /** The HTTP status Consul answered with, if it answered. */
  readonly statusCode: number | undefined;
  /** The transport's error code (`ECONNREFUSED`, `UND_ERR_HEADERS_TIMEOUT`), if any. */
  readonly code: string | undefined;

  constructor(message: string, facts: { readonly statusCode?: number; readonly code?: string } = {}) {
    super(message);
    this.statusCode = facts.statusCode;
    this.code = facts.code;
  }
}

/**
 * Reads a whole body, up to `maxResponseBytes`, counting its JSON nesting as it arrives. Beyond either
 * cap the body is dropped at once (the connection with it) and a {@link ConsulCallError} says which cap,
 * and which option raises it. @internal
 */
export async function readAnswer(res: Dispatcher.ResponseData, limits: AnswerLimits, json: boolean): Promise<Buffer> {
  const declared = Number(res.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limits.maxResponseBytes) {
    res.body.destroy();
    throw new ConsulCallError(`the answer's Content-Length of ${declared} bytes is over the cap of ${size(limits.maxResponseBytes)}; raise the registry's maxResponseBytes if the answer is real`);
  }
  const gauge = json ? new DepthGauge(limits.maxResponseDepth) : undefined;
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limits.maxResponseBytes) {
      res.body.destroy();
      throw new ConsulCallError(`the answer is larger than ${size(limits.maxResponseBytes)}; it was cut there. Raise the registry's maxResponseBytes if the answer is real`);
    }
    if (gauge !== undefined && !gauge.feed(chunk)) {
      res.body.destroy();
      throw new ConsulCallError(`the answer is nested deeper than ${limits.maxResponseDepth} levels of JSON arrays and objects; raise the registry's maxResponseDepth if the answer is real`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Parses a body {@link readAnswer} read; a body that is not JSON is a {@link ConsulCallError}. @internal */
export function parseAnswer(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8")) as unknown;
  } catch (err) {
    throw new ConsulCallError(`the answer is not JSON (${quote((err as Error).message)})`);
  }
}

/**
 * The failure of an answer that is not a success: its status, and the start of its body (Consul's
 * reason, such as `Permission denied: ...`), with the token blanked out should the body quote it. @internal
 */
export function statusFailure(statusCode: number, body: Buffer, token: string | undefined): ConsulCallError {
  return new ConsulCallError(scrub(quote(body.toString("utf8")), token), { statusCode });
}

/**
 * A transport failure (refused, reset, timed out, TLS) as a {@link ConsulCallError}: its message and
 * code only, with the token blanked out should a message quote it. @internal
 */
export function transportFailure(err: unknown, token: string | undefined): ConsulCallError {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return new ConsulCallError(scrub(quote(message), token), typeof code === "string" ? { code } : {});
}

/** `text` with every occurrence of the token replaced. @internal */
export function scrub(text: string, token: string | undefined): string {
  return token === undefined || token === "" ? text : text.replaceAll(token, "[token]");
}

function quote(text: string): string {
  const trimmed = text.trim();
  return trimmed.length > QUOTED_CHARS ? `${trimmed.slice(0, QUOTED_CHARS)}…` : trimmed;
}

function size(bytes: number): string {
  const MiB = 1024 * 1024;
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}

/**
 * Counts the nesting of JSON arrays and objects across chunks, outside strings (a byte of a multi-byte
 * UTF-8 character is never `"`, `\`, `[` or `{`). A loop, never recursion: no input can overflow it.
 */
class DepthGauge {
  readonly #max: number;
  #depth = 0;
  #inString = false;
  #escaped = false;

  constructor(max: number) {
    this.#max = max;
  }

  /**
   * Takes the next chunk; false once the nesting went deeper than the cap. About 3 ms per MB (JSON.parse
   * takes twice that), and only on registry answers, never per request.
   */
  feed(chunk: Uint8Array): boolean {
    const max = this.#max;
    let depth = this.#depth;
    let inString = this.#inString;
    let escaped = this.#escaped;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (b === 0x5c) escaped = true;
        else if (b === 0x22) inString = false;
      } else if (b === 0x22) inString = true;
      else if (b === 0x5b || b === 0x7b) {
        if (++depth > max) return false;
      } else if (b === 0x5d || b === 0x7d) depth--;
    }
    this.#depth = depth;
    this.#inString = inString;
    this.#escaped = escaped;
    return true;
  }
}
