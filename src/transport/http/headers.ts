import type { Dispatcher } from "undici";

/** Request headers in any of the shapes undici accepts. @internal */
export type HeadersInput = Dispatcher.DispatchOptions["headers"];

/** Headers that are present. @internal */
export type Headers = Exclude<HeadersInput, undefined>;

function isHost(name: string): boolean {
  return name.length === 4 && name.toLowerCase() === "host";
}

/**
 * Returns headers that carry a `Host` header: `headers` itself when the caller set one, otherwise a copy
 * with `host` added. `none` is the shared object used when there are no headers at all. @internal
 */
export function withHost(headers: HeadersInput, host: string, none: Readonly<Record<string, string>>): Headers {
  if (headers === undefined || headers === null) return none;
  if (Array.isArray(headers)) {
    const flat = headers as readonly unknown[];
    if (flat.length > 0 && Array.isArray(flat[0])) return withHostPairs(flat as Iterable<[string, string]>, host);
    for (let i = 0; i < flat.length; i += 2) if (isHost(String(flat[i]))) return headers;
    return [...(flat as readonly string[]), "host", host];
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    return withHostPairs(headers as Iterable<[string, string]>, host);
  }
  const record = headers as Record<string, string | string[]>;
  for (const name in record) if (isHost(name)) return headers;
  return { host, ...record };
}

/** Flattens `[name, value]` pairs (undici takes pairs only from non-array iterables) and adds `host`. */
function withHostPairs(pairs: Iterable<[string, string | string[] | undefined]>, host: string): Headers {
  const out: string[] = [];
  let hasHost = false;
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    if (isHost(name)) hasHost = true;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  if (!hasHost) out.push("host", host);
  return out;
}
