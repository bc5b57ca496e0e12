import { parseIdentity } from "./identity.ts";
import { IdentityCell, type IdentitySource } from "./identity-source.ts";

/** PEM text of an identity: certificate (chain), key, and the CAs to trust. */
export interface PemIdentityOptions {
  /** The certificate chain, PEM (leaf first). */
  readonly cert: string;
  /** Its private key, PEM. */
  readonly key: string;
  /** The trust bundle: CA certificates, PEM. */
  readonly ca: string | readonly string[];
}

/** An identity held in memory, rotated by calling {@link PemIdentity.update}. */
export interface PemIdentity extends IdentitySource {
  /**
   * Replaces the identity (a rotation): new connections use it, open ones carry on.
   *
   * @throws MeshError `ERR_INVALID_IDENTITY` when it is unusable; the previous identity stays
   */
  update(options: PemIdentityOptions): void;
}

/**
 * An identity from PEM text you hold (fetched from Vault, a secret manager, or minted in tests).
 *
 * @throws MeshError `ERR_INVALID_IDENTITY` when the certificate, key or bundle is unusable
 *
 * @example
 * ```ts
 * const identity = pemIdentity({ cert, key, ca });
 * const mesh = createMesh({ registry, tls: { identity } });
 * identity.update({ cert: next.cert, key: next.key, ca }); // rotation
 * ```
 */
export function pemIdentity(options: PemIdentityOptions): PemIdentity {
  const cell = new IdentityCell(() => Promise.resolve());
  const update = (o: PemIdentityOptions): void => cell.set(parseIdentity(o.cert, o.key, o.ca));
  update(options);
  return Object.assign(cell, { update });
}
