import { X509Certificate, randomBytes, webcrypto } from "node:crypto";

/** A certificate and its private key, in PEM. */
export interface TestCertificate {
  /** The certificate, PEM. */
  readonly certPem: string;
  /** Its private key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** The serial number, colon-separated hex as Consul writes it (`3e:5f:...`). */
  readonly serialNumber: string;
  /** Start of validity. */
  readonly notBefore: Date;
  /** End of validity. */
  readonly notAfter: Date;
  /** The URI SAN (a SPIFFE ID), when it has one. */
  readonly uri?: string;
}

/** What {@link TestCertificateAuthority.issue} puts in a leaf. */
export interface LeafOptions {
  /** The URI SAN, such as `spiffe://<trust-domain>/ns/default/dc/dc1/svc/orders`. */
  readonly uri?: string;
  /** DNS SANs. */
  readonly dnsNames?: readonly string[];
  /** IP SANs. */
  readonly ipAddresses?: readonly string[];
  /** The subject's CN. Default: the last path segment of `uri`, or `leaf`. */
  readonly commonName?: string;
  /** Start of validity. Default: one minute ago. */
  readonly notBefore?: Date;
  /** End of validity. Default: `notBefore` plus `validForMs`. */
  readonly notAfter?: Date;
  /** Lifetime when `notAfter` is not given, in ms. Default 72 hours (Consul's leaf default). */
  readonly validForMs?: number;
}

/** Options for {@link TestCertificateAuthority.create}. */
export interface TestCaOptions {
  /** The SPIFFE trust domain. Default: a random `<uuid>.consul`, as Consul makes. */
  readonly trustDomain?: string;
  /** The root's CN. Default `Test CA`. */
  readonly commonName?: string;
  /** Start of the root's validity. Default: one hour ago. */
  readonly notBefore?: Date;
  /** End of the root's validity. Default: ten years after `notBefore`. */
  readonly notAfter?: Date;
}

type X509Module = typeof import("@peculiar/x509");

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
let x509Module: Promise<X509Module> | undefined;

/** Loads @peculiar/x509 (an optional peer dependency, with reflect-metadata) on first use. */
async function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    try {
      await import("reflect-metadata");
      const x509 = await import("@peculiar/x509");
      x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
      return x509;
    } catch (err) {
      throw new Error("minting test certificates needs the optional packages @peculiar/x509 and reflect-metadata: npm install -D @peculiar/x509 reflect-metadata", { cause: err });
    }
  })();
  return x509Module;
}

function serialHex(): string {
  const bytes = randomBytes(8);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return bytes.toString("hex");
}

const colons = (hex: string): string => hex.match(/../g)?.join(":") ?? hex;

/**
 * A certificate authority for tests: an ECDSA P-256 root that issues leaf certificates with SPIFFE URI
 * SANs, as Consul's built-in CA does. Built on `@peculiar/x509` (an optional peer dependency of
 * proxyless, needed only to mint certificates).
 *
 * @example
 * ```ts
 * const ca = await TestCertificateAuthority.create();
 * const leaf = await ca.issue({ uri: ca.spiffeId("orders") });
 * https.createServer({ cert: leaf.certPem, key: leaf.keyPem, ca: ca.rootPem, requestCert: true });
 * ```
 */
export class TestCertificateAuthority {
  /** The SPIFFE trust domain. */
  readonly trustDomain: string;
  /** The root certificate, PEM. */
  readonly rootPem: string;
  /** The root's id as Consul writes it: its SHA-1 fingerprint, colon-separated lower-case hex. */
  readonly id: string;
  /** The root's serial number, colon-separated hex. */
  readonly serialNumber: string;
  /** Start of the root's validity. */
  readonly notBefore: Date;
  /** End of the root's validity. */
  readonly notAfter: Date;
  /** The subject key id, colon-separated hex. */
  readonly signingKeyId: string;
  readonly #keys: webcrypto.CryptoKeyPair;
  readonly #name: string;
  readonly #x509: X509Module;

  private constructor(x509: X509Module, keys: webcrypto.CryptoKeyPair, name: string, cert: { pem: string; serial: string; notBefore: Date; notAfter: Date; keyId: string }, trustDomain: string) {
    this.#x509 = x509;
    this.#keys = keys;
    this.#name = name;
    this.trustDomain = trustDomain;
    this.rootPem = cert.pem;
    this.serialNumber = colons(cert.serial);
    this.notBefore = cert.notBefore;
    this.notAfter = cert.notAfter;
    this.signingKeyId = colons(cert.keyId);
    this.id = new X509Certificate(cert.pem).fingerprint.toLowerCase();
  }

  /**
   * Makes a new root.
   *
   * @param options - trust domain, name and validity
   */
  static async create(options: TestCaOptions = {}): Promise<TestCertificateAuthority> {
    const x509 = await loadX509();
    const trustDomain = options.trustDomain ?? `${webcrypto.randomUUID()}.consul`;
    const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]));
    const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
    const notAfter = options.notAfter ?? new Date(notBefore.getTime() + 10 * 365 * 86_400_000);
    const name = `CN=${options.commonName ?? "Test CA"}`;
    const serial = serialHex();
    const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial,
      name,
      notBefore,
      notAfter,
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        ski,
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${trustDomain}` }]),
      ],
    });
    return new TestCertificateAuthority(x509, keys, name, { pem: cert.toString("pem"), serial, notBefore, notAfter, keyId: ski.keyId }, trustDomain);
  }

  /**
   * The SPIFFE ID Consul gives a service: `spiffe://<trust-domain>/ns/<namespace>/dc/<datacenter>/svc/<service>`.
   *
   * @param service - the service name
   * @param options - namespace (default `default`) and datacenter (default `dc1`)
   */
  spiffeId(service: string, options: { readonly namespace?: string; readonly datacenter?: string } = {}): string {
    return `spiffe://${this.trustDomain}/ns/${options.namespace ?? "default"}/dc/${options.datacenter ?? "dc1"}/svc/${service}`;
  }

  /**
   * Issues a leaf certificate (for servers and clients) signed by this root.
   *
   * @param options - SANs, name and validity
   */
  async issue(options: LeafOptions = {}): Promise<TestCertificate> {
    const x509 = this.#x509;
    const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]));
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
    const notAfter = options.notAfter ?? new Date(notBefore.getTime() + (options.validForMs ?? 72 * 3_600_000));
    const sans: { type: "url" | "dns" | "ip"; value: string }[] = [];
    if (options.uri !== undefined) sans.push({ type: "url", value: options.uri });
    for (const dns of options.dnsNames ?? []) sans.push({ type: "dns", value: dns });
    for (const ip of options.ipAddresses ?? []) sans.push({ type: "ip", value: ip });
    const commonName = options.commonName ?? options.uri?.split("/").pop() ?? "leaf";
    const serial = serialHex();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${commonName}`,
      issuer: this.#name,
      notBefore,
      notAfter,
      signingAlgorithm: ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: this.#keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(this.#keys.publicKey),
        ...(sans.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(sans)]),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`;
    return { certPem: cert.toString("pem"), keyPem, serialNumber: colons(serial), notBefore, notAfter, ...(options.uri === undefined ? {} : { uri: options.uri }) };
  }
}
