import type { Pool } from "undici";
import { expectOptions, optionalNumber } from "../../core/validate.ts";

/**
 * Connection pool settings, per endpoint. Every field is optional; undici's defaults apply to what is
 * left out (see the README's table).
 */
export interface PoolOptions {
  /** Maximum connections per endpoint; `null` (the default) means no limit. */
  readonly connections?: number | null;
  /** Requests pipelined per connection; default 1 (no pipelining). */
  readonly pipelining?: number;
  /** Idle time before a kept-alive connection is closed, in ms; default 4000. */
  readonly keepAliveTimeout?: number;
  /** Ceiling on the keep-alive time a server may ask for, in ms; default 600000. */
  readonly keepAliveMaxTimeout?: number;
  /** Time allowed to open a connection, in ms; default 10000. */
  readonly connectTimeout?: number;
  /** Time allowed to receive the response headers, in ms; default 300000. */
  readonly headersTimeout?: number;
  /** Time allowed between two chunks of the response body, in ms; default 300000. */
  readonly bodyTimeout?: number;
}

const KEYS = [
  "connections",
  "pipelining",
  "keepAliveTimeout",
  "keepAliveMaxTimeout",
  "connectTimeout",
  "headersTimeout",
  "bodyTimeout",
] as const;

/**
 * Validates pool options and turns them into undici `Pool` options. @internal
 *
 * @throws MeshError `ERR_INVALID_CONFIG` naming the field at fault
 */
export function toUndiciPoolOptions(raw: PoolOptions | undefined, field: string): Pool.Options {
  const o = expectOptions(raw, field, KEYS);
  const out: Record<string, number | null> = {};
  if (o.connections === null) out.connections = null;
  else {
    const connections = optionalNumber(o.connections, `${field}.connections`, { min: 1, integer: true });
    if (connections !== undefined) out.connections = connections;
  }
  const pipelining = optionalNumber(o.pipelining, `${field}.pipelining`, { min: 1, max: 1000, integer: true });
  if (pipelining !== undefined) out.pipelining = pipelining;
  for (const key of KEYS.slice(2)) {
    const value = optionalNumber(o[key], `${field}.${key}`, { min: 1, integer: true });
    if (value !== undefined) out[key] = value;
  }
  return out;
}
