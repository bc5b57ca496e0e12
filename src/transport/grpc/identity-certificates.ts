import type { experimental } from "@grpc/grpc-js";
import type { Identity } from "../../security/identity.ts";
import type { IdentitySource } from "../../security/identity-source.ts";

type CaListener = experimental.CaCertificateUpdateListener;
type IdListener = experimental.IdentityCertificateUpdateListener;

/**
 * The mesh's identity as a grpc-js certificate provider: the trust bundle and the certificate and key,
 * pushed again at every rotation, so new connections of grpc-js channels and servers use the new
 * identity while open ones carry on. @internal
 */
export class IdentityCertificates implements experimental.CertificateProvider {
  readonly #source: IdentitySource;
  readonly #ca = new Set<CaListener>();
  readonly #identity = new Set<IdListener>();
  readonly #unsubscribe: () => void;

  constructor(source: IdentitySource) {
    this.#source = source;
    this.#unsubscribe = source.subscribe((update) => {
      if (!("identity" in update)) return;
      for (const listener of this.#ca) listener(caUpdate(update.identity));
      for (const listener of this.#identity) listener(identityUpdate(update.identity));
    });
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#ca.add(listener);
    const now = this.#source.current();
    // On the next tick, as grpc-js's own providers do: its credentials register their watchers after adding listeners.
    if (now !== undefined) process.nextTick(() => this.#ca.has(listener) && listener(caUpdate(now)));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#ca.delete(listener);
  }

  addIdentityCertificateListener(listener: IdListener): void {
    this.#identity.add(listener);
    const now = this.#source.current();
    if (now !== undefined) process.nextTick(() => this.#identity.has(listener) && listener(identityUpdate(now)));
  }

  removeIdentityCertificateListener(listener: IdListener): void {
    this.#identity.delete(listener);
  }

  /** Stops following the source. */
  close(): void {
    this.#unsubscribe();
  }
}

function caUpdate(identity: Identity): experimental.CaCertificateUpdate {
  return { caCertificate: Buffer.from(identity.trustPems.join("\n")) };
}

function identityUpdate(identity: Identity): experimental.IdentityCertificateUpdate {
  return { certificate: Buffer.from(identity.certPem), privateKey: Buffer.from(identity.keyPem) };
}
