import { withHeadersSet, type Headers, type HeadersInput } from "../core/headers.ts";

/**
 * Request headers with the propagator's headers (`traceparent`, `tracestate`, `baggage`) set, replacing
 * any of those names the caller gave, in any letter case: the attempt's span is the server's parent.
 * The propagator writes lower-case names. @internal
 */
export function withTraceHeaders(headers: HeadersInput, carrier: Readonly<Record<string, string>>): Headers {
  if (headers === undefined || headers === null) return carrier;
  if (!Array.isArray(headers) && typeof (headers as Iterable<unknown>)[Symbol.iterator] !== "function") {
    const record = headers as Record<string, string | string[]>;
    let clash = false;
    for (const name in record) {
      const lower = name.toLowerCase();
      if (lower in carrier) {
        clash = true;
        break;
      }
    }
    if (!clash) return { ...record, ...carrier };
  }
  return withHeadersSet(headers, carrier);
}
