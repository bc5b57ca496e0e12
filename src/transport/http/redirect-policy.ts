import type { Dispatcher } from "undici";
import { MeshError } from "../../core/errors.ts";
import { invalidArgument } from "../../core/request-arguments.ts";
import { isValidServiceName } from "../../core/service-name.ts";

/**
 * The service a redirect hop of a `client.fetch()` would go to, when it names one (`http://<service>`
 * with no port) other than the service called; undefined for a hop that stays on that service, and for
 * origins that are no mesh service at all (the mesh's routing refuses those with `ERR_INVALID_ARGUMENT`).
 *
 * @param origin - the hop's origin, as undici's fetch dispatches it
 * @param own - the origin of the service called, `http://<service>`
 * @internal
 */
export function otherServiceOf(origin: string | URL | undefined, own: string): string | undefined {
  const key = typeof origin === "string" ? origin : origin?.origin;
  if (key === own || key === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(key);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" || url.port !== "" || url.username !== "" || url.password !== "") return undefined;
  return isValidServiceName(url.hostname) && url.hostname !== "localhost" ? url.hostname : undefined;
}

/**
 * `ERR_REDIRECT_REFUSED`: `service` answered a `client.fetch()` with a redirect to `target`, which the
 * caller did not list in `allowRedirectsTo`. Names services only: the Location's path and query may hold
 * a secret. @internal
 */
export function redirectRefused(service: string, target: string): MeshError {
  return new MeshError(
    "ERR_REDIRECT_REFUSED",
    `Redirect refused: service '${service}' answered with a redirect to service '${target}'. The mesh follows a fetch's redirects ` +
      `within the service called only: the next request would carry this process's identity, its headers and (for 307 and 308) ` +
      `its body to a service the caller did not name. Nothing was sent to '${target}'. To follow it, list the service: ` +
      `client.fetch(url, { allowRedirectsTo: ["${target}"] }); to handle the redirect yourself, pass redirect: "manual".`,
    { details: { service, target } },
  );
}

/**
 * `allowRedirectsTo` checked: a list of service names, as a set; undefined when not given.
 *
 * @throws MeshError `ERR_INVALID_ARGUMENT` for anything else
 * @internal
 */
export function parseRedirectAllowlist(raw: unknown, service: string): ReadonlySet<string> | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) {
    throw invalidArgument(`'allowRedirectsTo' is a list of service names such as ["payments"] (fetch() to service '${service}')`);
  }
  for (const name of raw as unknown[]) {
    if (!isValidServiceName(name)) {
      throw invalidArgument(
        `'allowRedirectsTo' lists service names (DNS labels such as "payments"; no wildcard, host name or URL), got ${typeof name === "string" ? JSON.stringify(name.slice(0, 100)) : typeof name} (fetch() to service '${service}')`,
      );
    }
  }
  return new Set(raw as string[]);
}

/** The statuses whose `Location` fetch follows. */
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** The header that says a redirect's `Location` was withheld, and to which service it pointed. */
export const REDIRECT_REFUSED_HEADER = "x-proxyless-redirect-refused";

/**
 * The service a response's `Location` leads to when it is another mesh service than `service` and not
 * in `allowed`: the redirect a caller's fetch would follow through `mesh.dispatcher`. Undefined when it
 * stays on the service, is allowed, or leads out of the mesh (the mesh dispatcher decides about those).
 */
function refusedTarget(location: string, service: string, allowed: ReadonlySet<string> | "*"): string | undefined {
  if (allowed === "*") return undefined;
  let url: URL;
  try {
    url = new URL(location, `http://${service}/`);
  } catch {
    return undefined;
  }
  const target = otherServiceOf(url.origin, `http://${service}`);
  return target === undefined || allowed.has(target) ? undefined : target;
}

/**
 * A handler (either undici API) whose redirect responses to another mesh service lose their `Location`,
 * unless `allowed` lists that service: fetch then hands the 3xx to the caller instead of sending the
 * next request (with this process's identity, the headers and, for 307 and 308, the body) to a service
 * the caller did not name. Such a response carries `x-proxyless-redirect-refused: <service>`. Used by
 * `mesh.dispatcher`, which sees each redirect hop as a request of its own. @internal
 *
 * @param service - the service that answers
 * @param allowed - the services a redirect may lead to, or `"*"` for any
 */
export function guardRedirects(handler: Dispatcher.DispatchHandler, service: string, allowed: ReadonlySet<string> | "*"): Dispatcher.DispatchHandler {
  if (allowed === "*") return handler;
  return new Proxy(handler, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === "onHeaders") {
        return (status: number, raw: Buffer[], resume: unknown, text: unknown) => fn.call(target, status, REDIRECTS.has(status) ? withoutRefusedLocation(raw, service, allowed) : raw, resume, text);
      }
      if (prop === "onResponseStart") {
        return (controller: unknown, status: number, headers: Record<string, string | string[] | undefined>, message: unknown) => {
          const location = headers.location;
          const refused = REDIRECTS.has(status) && typeof location === "string" ? refusedTarget(location, service, allowed) : undefined;
          if (refused !== undefined) {
            Reflect.deleteProperty(headers, "location");
            headers[REDIRECT_REFUSED_HEADER] = refused;
          }
          return fn.call(target, controller, status, headers, message);
        };
      }
      return fn.bind(target);
    },
  });
}

/** Raw response headers without a `Location` to a refused service (and with the header that says so). */
function withoutRefusedLocation(raw: Buffer[], service: string, allowed: ReadonlySet<string> | "*"): Buffer[] {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toString("latin1").toLowerCase() !== "location") continue;
    const refused = refusedTarget(raw[i + 1]?.toString("latin1") ?? "", service, allowed);
    if (refused === undefined) return raw;
    const out = [...raw.slice(0, i), ...raw.slice(i + 2)];
    out.push(Buffer.from(REDIRECT_REFUSED_HEADER, "latin1"), Buffer.from(refused, "latin1"));
    return out;
  }
  return raw;
}
