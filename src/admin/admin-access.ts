import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/** Whether `host` (an address or a name) is this machine only: 127.0.0.0/8, ::1 or localhost. @internal */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (bare === "localhost" || bare === "::1") return true;
  return isIP(bare) === 4 && bare.startsWith("127.");
}

/**
 * Who may read the admin server: a request with the bearer token when one is set. Without a token (a
 * loopback server only), a request whose `Host` names this machine: a web page elsewhere that rebinds
 * its own name to 127.0.0.1 (DNS rebinding) sends its own name as `Host`, and is refused. @internal
 */
export class AdminAccess {
  readonly #digest: Buffer | undefined;

  /** @param token - the bearer token, or undefined for none */
  constructor(token: string | undefined) {
    this.#digest = token === undefined ? undefined : digest(token);
  }

  /** Whether a token is required. */
  get hasToken(): boolean {
    return this.#digest !== undefined;
  }

  /**
   * Undefined when the request may read; else the status and why.
   *
   * @param open - whether the path holds no data (the page and its scripts): no token needed, the other checks hold
   */
  check(req: IncomingMessage, open = false): { readonly status: 401 | 403; readonly message: string } | undefined {
    // A page of another site may not make this server work, even unread (a GET can still start work):
    // browsers say where a request comes from.
    const site = req.headers["sec-fetch-site"];
    const origin = req.headers.origin;
    if (site === "cross-site" || site === "same-site" || (typeof origin === "string" && !isLoopbackOrigin(origin))) {
      return { status: 403, message: "The admin server answers its own page and programs, not pages of other sites." };
    }
    const required = this.#digest;
    if (required === undefined) {
      const host = hostName(req.headers.host?.toLowerCase());
      if (host === undefined || !isLoopbackHost(host)) {
        return { status: 403, message: "The admin server answers requests addressed to 127.0.0.1, [::1] or localhost only (Host header), unless it has a token." };
      }
      return undefined;
    }
    if (open) return undefined;
    const header = req.headers.authorization;
    const given = typeof header === "string" && /^Bearer +/i.test(header) ? header.replace(/^Bearer +/i, "").trim() : undefined;
    // Compared as digests of equal length, in constant time: the comparison says nothing of the token.
    if (given === undefined || !timingSafeEqual(digest(given), required)) {
      return { status: 401, message: "This admin server needs its token: send 'Authorization: Bearer <token>'." };
    }
    return undefined;
  }
}

function isLoopbackOrigin(origin: string): boolean {
  try {
    return isLoopbackHost(new URL(origin).hostname);
  } catch {
    return false;
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** The host part of a `Host` header (without its port), or undefined when there is none. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === "") return undefined;
  if (header.startsWith("[")) {
    const end = header.indexOf("]");
    return end === -1 ? undefined : header.slice(0, end + 1);
  }
  const colon = header.indexOf(":");
  return colon === -1 ? header : header.slice(0, colon);
}
