import { X509Certificate, createPrivateKey } from "node:crypto";
import { MeshError } from "../core/errors.ts";

/** A workload identity: the mesh's certificate and key, and the CAs it trusts. */
export interface Identity {
  /** The certificate chain, PEM (leaf first). */
  readonly certPem: string;
  /** The private key, PEM. */
  readonly keyPem: string;
  /** The trust bundle: CA certificates, PEM, that peers' certificates must chain to. */
  readonly trustPems: readonly string[];
  /** The certificate's SPIFFE ID (URI SAN), when it has one. */
  readonly spiffeId: string | undefined;
  /** The SPIFFE trust domain: from the source (Consul's `TrustDomain`) or from `spiffeId`. */
  readonly trustDomain: string | undefined;
  /** The certificate's serial number, hex. */
  readonly serialNumber: string;
  /** End of the certificate's validity. */
  readonly notAfter: Date;
}

/**
 * A SPIFFE ID's parts. For Consul's layout, `spiffe://<trust-domain>/ns/<ns>/dc/<dc>/svc/<service>`, or
 * with an admin partition `spiffe://<trust-domain>/ap/<partition>/ns/<ns>/dc/<dc>/svc/<service>`, also
 * the service, namespace, partition and datacenter.
 */
export interface SpiffeParts {
  /** The trust domain (host part), lower case: SPIFFE compares it case-insensitively. */
  readonly trustDomain: string;
  /** The path, such as `/ns/default/dc/dc1/svc/web`, as written: SPIFFE compares it case-sensitively. */
  readonly path: string;
  /** The service, when the path is in Consul's layout. */
  readonly service: string | undefined;
  /** The namespace, when the path is in Consul's layout. */
  readonly namespace: string | undefined;
  /** The admin partition, when the path is in Consul's layout: its `/ap/` segment, `default` without one. */
  readonly partition?: string | undefined;
  /** The datacenter, when the path is in Consul's layout. */
  readonly datacenter: string | undefined;
}

const CONSUL_PATH = /^(?:\/ap\/([^/]+))?\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;
/** The SPIFFE ID spec's characters: a trust domain of lower-case letters, digits, `.`, `-` and `_` (compared lower-cased). */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
/** A path segment of the SPIFFE ID spec: letters, digits, `.`, `-` and `_`, and neither `.` nor `..`. */
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Splits a SPIFFE ID into its trust domain and path, and the service, namespace, partition and
 * datacenter when the path is in Consul's layout. Only IDs the SPIFFE spec allows parse: a trust domain
 * without user, port or percent-escapes, a path of non-empty segments (no `.`, `..`, `%`, query or
 * fragment), at most 2048 bytes. The scheme and trust domain are case-insensitive (the trust domain
 * comes back lower case); the path is kept as written and compared case-sensitively.
 *
 * @returns undefined when `id` is not a valid `spiffe://` ID
 */
export function parseSpiffeId(id: string): SpiffeParts | undefined {
  if (id.length > 2048 || !/^spiffe:\/\//i.test(id)) return undefined;
  const rest = id.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const trustDomain = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? "" : rest.slice(slash);
  if (trustDomain.length > 255 || !TRUST_DOMAIN.test(trustDomain)) return undefined;
  if (path !== "" && !path.slice(1).split("/").every((s) => PATH_SEGMENT.test(s) && s !== "." && s !== "..")) return undefined;
  const c = CONSUL_PATH.exec(path);
  if (c === null) return { trustDomain, path, service: undefined, namespace: undefined, partition: undefined, datacenter: undefined };
  return { trustDomain, path, service: c[4], namespace: c[2], partition: c[1] ?? "default", datacenter: c[3] };
}

/**
 * Whether two SPIFFE IDs name the same workload: the scheme and trust domain compared
 * case-insensitively, the path exactly, except that Consul's `/ap/default` (the default admin
 * partition, named) is the same as no partition, as Consul reads it. IDs that do not parse are never
 * the same. @internal
 */
export function sameSpiffeId(a: SpiffeParts, b: SpiffeParts): boolean {
  return a.trustDomain.toLowerCase() === b.trustDomain.toLowerCase() && withoutDefaultPartition(a.path) === withoutDefaultPartition(b.path);
}

/** A Consul path with a named default partition (`/ap/default/ns/...`) as Consul's usual form (`/ns/...`). */
function withoutDefaultPartition(path: string): string {
  return path.startsWith("/ap/default/ns/") ? path.slice("/ap/default".length) : path;
}

/**
 * A URI with its scheme and authority lower-cased and its path as written: the form in which SPIFFE
 * IDs compare (the scheme and trust domain case-insensitively, the path case-sensitively). @internal
 */
export function foldSpiffeCase(uri: string): string {
  const slash = uri.indexOf("/", uri.indexOf("://") + 3);
  return slash < 0 ? uri.toLowerCase() : uri.slice(0, slash).toLowerCase() + uri.slice(slash);
}

/**
 * The URI SANs of a certificate, from node's `subjectAltName` string (`URI:spiffe://..., DNS:...`).
 * Node writes a value holding a `,` or other special characters as a JSON string
 * (`URI:"spiffe://a, URI:spiffe://b"`): such a value is read whole, so it cannot pass for two. @internal
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (subjectAltName === undefined) return [];
  const out: string[] = [];
  let i = 0;
  while (i < subjectAltName.length) {
    const colon = subjectAltName.indexOf(":", i);
    if (colon < 0) break;
    const kind = subjectAltName.slice(i, colon);
    let value: string;
    let end: number;
    if (subjectAltName[colon + 1] === '"') {
      // A JSON string: find its closing quote (one not escaped).
      let j = colon + 2;
      while (j < subjectAltName.length && subjectAltName[j] !== '"') j += subjectAltName[j] === "\\" ? 2 : 1;
      end = j + 1;
      try {
        value = JSON.parse(subjectAltName.slice(colon + 1, end)) as string;
      } catch {
        return out; // not node's format: read no further
      }
    } else {
      const comma = subjectAltName.indexOf(", ", colon + 1);
      end = comma < 0 ? subjectAltName.length : comma;
      value = subjectAltName.slice(colon + 1, end);
    }
    if (kind === "URI") out.push(value);
    i = subjectAltName.startsWith(", ", end) ? end + 2 : end;
  }
  return out;
}

/**
 * The SPIFFE ID of a certificate: its one URI SAN with the `spiffe` scheme. An X.509-SVID carries
 * exactly one URI SAN, so a certificate with several SPIFFE IDs has none that can be trusted: undefined. @internal
 */
export function certificateSpiffeId(subjectAltName: string | undefined): string | undefined {
  const ids = uriSans(subjectAltName).filter((u) => u.toLowerCase().startsWith("spiffe://"));
  return ids.length === 1 ? ids[0] : undefined;
}

/** Splits PEM text holding several certificates into one PEM per certificate. @internal */
export function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
}

function invalidIdentity(message: string, cause?: unknown): MeshError {
  return new MeshError("ERR_INVALID_IDENTITY", `Invalid identity: ${message}`, { cause });
}

/**
 * Checks a certificate, its key and a trust bundle, and builds an {@link Identity}: the certificate must
 * parse, match the key, be within its validity, and chain to one of the trusted CAs.
 *
 * @param certPem - the certificate chain, PEM (leaf first)
 * @param keyPem - its private key, PEM
 * @param trustPem - CA certificates, PEM (one text or several)
 * @param trustDomain - the trust domain when the source knows it (Consul's `TrustDomain`)
 * @param now - the time to check validity against, in ms since the epoch
 * @throws MeshError `ERR_INVALID_IDENTITY` saying what is wrong
 */
export function parseIdentity(certPem: string, keyPem: string, trustPem: string | readonly string[], trustDomain?: string, now: number = Date.now()): Identity {
  const chain = splitPem(certPem);
  const leafPem = chain[0];
  if (leafPem === undefined) throw invalidIdentity("the certificate is not PEM (no BEGIN CERTIFICATE block)");
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (err) {
    throw invalidIdentity(`the certificate does not parse: ${(err as Error).message}`, err);
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw invalidIdentity("the private key does not match the certificate (a half-written rotation?)");
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw invalidIdentity(`the private key does not parse: ${(err as Error).message}`, err);
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now) throw invalidIdentity(`the certificate expired at ${notAfter.toISOString()}`);
  const trustPems = (typeof trustPem === "string" ? [trustPem] : trustPem).flatMap(splitPem);
  if (trustPems.length === 0) throw invalidIdentity("the trust bundle holds no CA certificate");
  const cas = trustPems.map((pem) => new X509Certificate(pem));
  const intermediates = chain.slice(1).map((pem) => new X509Certificate(pem));
  const issuers = [...intermediates, ...cas];
  let current = leaf;
  let trusted = false;
  for (let depth = 0; depth < 8; depth++) {
    if (cas.some((ca) => current.checkIssued(ca) && current.verify(ca.publicKey))) {
      trusted = true;
      break;
    }
    const next = issuers.find((c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey));
    if (next === undefined) break;
    current = next;
  }
  if (!trusted) throw invalidIdentity("the certificate does not chain to any CA of the trust bundle");
  const spiffeId = uriSans(leaf.subjectAltName).find((u) => u.toLowerCase().startsWith("spiffe://"));
  return {
    certPem,
    keyPem,
    trustPems,
    spiffeId,
    trustDomain: trustDomain?.toLowerCase() ?? (spiffeId === undefined ? undefined : parseSpiffeId(spiffeId)?.trustDomain),
    serialNumber: leaf.serialNumber,
    notAfter,
  };
}
