import type { Dispatcher } from "undici";
import { headerValue } from "../core/headers.ts";

/** How an attempt went wrong, as the retry conditions name it. @internal */
export type FailureKind = "connect-failure" | "reset" | "timeout" | "aborted" | "other";

// A refused peer identity, a plaintext endpoint under strict mTLS, or no identity of our own: nothing was sent.
const CONNECT_CODES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND", "UND_ERR_CONNECT_TIMEOUT", "ERR_PEER_IDENTITY", "ERR_TLS_REQUIRED", "ERR_IDENTITY_UNAVAILABLE"]);
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

/**
 * Classifies an attempt's error. `connect-failure`: no connection was made, so the request was
 * provably not sent (safe to retry whatever the method). `reset`: the connection broke before a
 * response. `timeout`: the per-try or total time ran out. `aborted`: the caller's own signal. @internal
 */
export function classifyError(error: unknown, callerSignal: AbortSignal | undefined): FailureKind {
  if (callerSignal?.aborted === true) return "aborted";
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    if (CONNECT_CODES.has(code)) return "connect-failure";
    if (RESET_CODES.has(code)) return "reset";
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") return "timeout";
    if (code === "UND_ERR_ABORTED") return "aborted";
  }
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== error ? classifyError(cause, undefined) : "other";
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

/** Whether the request may be sent twice: an idempotent method, or an `Idempotency-Key` header. @internal */
export function isIdempotent(options: Dispatcher.DispatchOptions): boolean {
  const method = options.method ?? "GET";
  // Most methods come in capitals: no new string for them.
  return IDEMPOTENT.has(method) || IDEMPOTENT.has(method.toUpperCase()) || headerValue(options.headers, "idempotency-key") !== undefined;
}

/** Whether the body can be sent again: none, or a string or bytes no larger than `limit`. A stream cannot. @internal */
export function isReplayable(body: unknown, limit: number): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body === "string") return Buffer.byteLength(body) <= limit;
  if (body instanceof Uint8Array) return body.byteLength <= limit;
  return false;
}

/** The retry conditions a status answers to. @internal */
export function statusConditions(status: number, codes: ReadonlySet<number>): readonly string[] {
  const out: string[] = [];
  if (status >= 500) out.push("5xx");
  if (status === 502 || status === 503 || status === 504) out.push("gateway-error");
  if (status === 429) out.push("429");
  if (codes.has(status)) out.push("retriable-status-codes");
  return out;
}

/** Milliseconds a `Retry-After` header asks to wait (seconds or an HTTP date), or undefined. @internal */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>, now: number): number | undefined {
  const raw = headers["retry-after"];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
