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
