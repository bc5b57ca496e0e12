import { MeshError } from "./errors.ts";

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Tells whether `name` is a valid service name: a DNS label of lower-case letters, digits and `-`,
 * 1 to 63 characters, not starting or ending with `-`.
 *
 * @param name - the candidate name
 */
export function isValidServiceName(name: unknown): name is string {
  return typeof name === "string" && DNS_LABEL.test(name);
}

/**
 * Whether `http://<name>` is an origin whose host is `name` itself. A valid service name always is,
 * except one that a URL parser reads as an IPv4 address (`1234`, `0x7f`): its pools cannot name it, and
 * its requests carry `Host` as a header.
 *
 * @param name - a valid service name
 */
export function namesItsOrigin(name: string): boolean {
  try {
    return new URL(`http://${name}`).hostname === name;
  } catch {
    return false;
  }
}

/**
 * Throws `ERR_INVALID_SERVICE_NAME` unless `name` is a valid service name.
 *
 * @param name - the candidate name
 * @returns the name, typed as a string
 */
export function assertServiceName(name: unknown): string {
  if (isValidServiceName(name)) return name;
  const shown = typeof name === "string" ? JSON.stringify(name) : String(name);
  throw new MeshError(
    "ERR_INVALID_SERVICE_NAME",
    `Invalid service name ${shown}: a service name is a DNS label of 1 to 63 lower-case letters, digits ` +
      `and '-', neither starting nor ending with '-' (for example "orders" or "payments-v2").`,
    { details: typeof name === "string" ? { service: name } : {} },
  );
}
