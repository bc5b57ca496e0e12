import { createHash } from "node:crypto";
/**
 * What one ACL token may do in a {@link FakeConsul}: lists of name prefixes, as Consul's
 * `service_prefix` and `key_prefix` rules (`""` matches every name). Write implies read.
 */
export interface FakeAclToken {
  /** Service name prefixes the token may read (health, catalog, config entries). */
  readonly serviceRead?: readonly string[];
  /** Service name prefixes the token may write (register, config entries, leaf certificates, authorize). */
  readonly serviceWrite?: readonly string[];
  /** KV key prefixes the token may read. */
  readonly keyRead?: readonly string[];
  /** KV key prefixes the token may write. */
  readonly keyWrite?: readonly string[];
  /** Intentions (`service-intentions` entries and the intention queries): read or write on any. */
  readonly intentions?: "read" | "write";
}

/**
 * The permission a request needs. `token`: only that a token given is one that exists (the endpoint
 * filters what it answers, or answers 404 before it checks a permission). @internal
 */
export interface AclNeed {
  readonly resource: "service" | "key" | "intentions" | "token";
  readonly access: "read" | "write";
  readonly name: string;
}

/** Why a request is refused, with Consul's status and wording; undefined when it may go on. @internal */
export function aclCheck(tokens: Readonly<Record<string, FakeAclToken>> | undefined, secret: string | undefined, need: AclNeed | undefined): string | undefined {
  if (tokens === undefined || need === undefined) return undefined;
  const token = secret === undefined ? undefined : tokens[secret];
  if (secret !== undefined && token === undefined) return "ACL not found";
  if (need.resource === "token") return undefined;
  if (token !== undefined && allows(token, need)) return undefined;
  const accessor = secret === undefined ? "00000000-0000-0000-0000-000000000002" : accessorOf(secret);
  return `Permission denied: token with AccessorID '${accessor}' lacks permission '${need.resource}:${need.access}' on "${need.name}"`;
}

/** Whether the token may see `name` for reading (list filtering). @internal */
export function aclAllows(tokens: Readonly<Record<string, FakeAclToken>> | undefined, secret: string | undefined, need: AclNeed): boolean {
  return aclCheck(tokens, secret, need) === undefined;
}

function allows(token: FakeAclToken, need: AclNeed): boolean {
  const match = (prefixes: readonly string[] | undefined): boolean => (prefixes ?? []).some((p) => need.name.startsWith(p));
  switch (need.resource) {
    case "service":
      return match(token.serviceWrite) || (need.access === "read" && match(token.serviceRead));
    case "key":
      return match(token.keyWrite) || (need.access === "read" && match(token.keyRead));
    case "intentions":
      return token.intentions === "write" || (need.access === "read" && token.intentions === "read");
    case "token":
      return true;
  }
}

/**
 * The token of a request, in Consul's order: `?token`, then `X-Consul-Token`, then
 * `Authorization: Bearer`. @internal
 */
export function requestToken(params: URLSearchParams, headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const fromQuery = params.get("token");
  if (fromQuery !== null && fromQuery !== "") return fromQuery;
  const header = headers["x-consul-token"];
  if (typeof header === "string" && header !== "") return header;
  const auth = headers.authorization;
  const bearer = typeof auth === "string" ? /^Bearer\s+(.+)$/i.exec(auth)?.[1] : undefined;
  return bearer === undefined || bearer === "" ? undefined : bearer;
}

/**
 * A token's AccessorID: Consul's is a UUID of its own, unrelated to the secret, so an error that shows
 * it reveals nothing of the secret. Here, a UUID-shaped digest of the secret (stable per token).
 */
function accessorOf(secret: string): string {
  const hex = createHash("sha256").update(`accessor:${secret}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
