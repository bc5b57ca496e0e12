import type { CompiledHeaderChanges } from "../config/header-rules.ts";
import { headerPairs } from "../core/headers.ts";

/**
 * Applies header changes to request headers (any shape undici accepts), in order: each change's
 * `remove`, then `set` (replacing every value), then `add` (appending). Names compare
 * case-insensitively. Returns a flat `[name, value, ...]` array. @internal
 */
export function changeRequestHeaders(headers: unknown, changes: readonly CompiledHeaderChanges[]): string[] {
  return applyToPairs(headerPairs(headers), changes).flat();
}

function applyToPairs(start: [string, string][], changes: readonly CompiledHeaderChanges[]): [string, string][] {
  let list = start;
  for (const change of changes) {
    const drop = change.drop;
    if (drop.size > 0) list = list.filter(([n]) => !drop.has(n.toLowerCase()));
    for (const [n, v] of change.set) list.push([n, v]);
    for (const [n, v] of change.add) list.push([n, v]);
  }
  return list;
}

/**
 * Applies header changes to a response's headers as undici gives them (lower-case names, a string or
 * an array of strings each), in place. @internal
 */
export function changeResponseHeaders(headers: Record<string, string | string[] | undefined>, changes: readonly CompiledHeaderChanges[]): void {
  for (const change of changes) {
    for (const n of change.drop) Reflect.deleteProperty(headers, n);
    for (const [n, v] of change.set) headers[n] = v;
    for (const [key, v] of change.add) {
      const existing = headers[key];
      headers[key] = existing === undefined ? v : Array.isArray(existing) ? [...existing, v] : [existing, v];
    }
  }
}

/** The same, for the raw `[name, value, ...]` Buffer array of undici's older handler API. @internal */
export function changeRawResponseHeaders(raw: readonly (Buffer | string)[], changes: readonly CompiledHeaderChanges[]): Buffer[] {
  const list: [string, string][] = [];
  // Header bytes are latin1 in undici's raw form: keep them byte for byte.
  const text = (v: Buffer | string | undefined): string => (v === undefined ? "" : typeof v === "string" ? v : v.toString("latin1"));
  for (let i = 0; i + 1 < raw.length; i += 2) list.push([text(raw[i]), text(raw[i + 1])]);
  return applyToPairs(list, changes)
    .flat()
    .map((s) => Buffer.from(s, "latin1"));
}
