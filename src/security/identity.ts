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

/** A SPIFFE ID's parts in Consul's layout `spiffe://<trust-domain>/ns/<ns>/dc/<dc>/svc/<service>`. */
export interface SpiffeParts {
  /** The trust domain (host part). */
  readonly trustDomain: string;
  /** The path, such as `/ns/default/dc/dc1/svc/web`. */
  readonly path: string;
  /** The service, when the path is in Consul's layout. */
  readonly service: string | undefined;
  /** The namespace, when the path is in Consul's layout. */
  readonly namespace: string | undefined;
  /** The datacenter, when the path is in Consul's layout. */
  readonly datacenter: string | undefined;
}

const CONSUL_PATH = /^\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;

/**
 * Splits a SPIFFE ID into its trust domain and path, and the service, namespace and datacenter when the
 * path is in Consul's layout.
 *
 * @returns undefined when `id` is not a `spiffe://` URI with a trust domain
 */
export function parseSpiffeId(id: string): SpiffeParts | undefined {
  const m = /^spiffe:\/\/([^/]+)(\/.*)?$/i.exec(id);
  if (m === null) return undefined;
  const trustDomain = (m[1] ?? "").toLowerCase();
  const path = m[2] ?? "";
  const c = CONSUL_PATH.exec(path);
  return { trustDomain, path, service: c?.[3], namespace: c?.[1], datacenter: c?.[2] };
}

/** The URI SANs of a certificate, from node's `subjectAltName` string (`URI:spiffe://..., DNS:...`). @internal */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (subjectAltName === undefined) return [];
  const out: string[] = [];
  for (const part of subjectAltName.split(/,\s*/)) if (part.startsWith("URI:")) out.push(part.slice(4));
  return out;
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
