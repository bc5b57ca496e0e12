import { TestCertificateAuthority, type TestCertificate } from "../test-ca.ts";
import type { ConfigEntries, ConfigEntry } from "./config-entries.ts";

/** What the fake's Connect CA is configured with. @internal */
export interface ConnectOptions {
  readonly datacenter: string;
  readonly trustDomain: string;
  readonly leafValidForMs: number;
  readonly defaultIntentionPolicy: "allow" | "deny";
  /** Takes the next Raft index. */
  readonly bump: () => number;
  /** Wakes blocked queries. */
  readonly wake: () => void;
}

interface Root {
  readonly ca: TestCertificateAuthority;
  readonly index: number;
}

interface Leaf {
  readonly cert: TestCertificate;
  readonly root: string;
  readonly index: number;
  readonly createIndex: number;
  timer?: NodeJS.Timeout;
}

/** One intention as the legacy `/v1/connect/intentions` endpoints show it. @internal */
export interface Intention {
  readonly Description: string;
  readonly SourceNS: string;
  readonly SourceName: string;
  readonly DestinationNS: string;
  readonly DestinationName: string;
  readonly SourceType: string;
  readonly Action: "allow" | "deny";
  readonly Permissions?: unknown[];
  readonly Meta: Record<string, string>;
  readonly Precedence: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

const SPIFFE_SERVICE = /^spiffe:\/\/([^/]+)(?:\/ap\/([^/]+))?\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;

/**
 * The Connect part of a fake Consul: a CA (real ECDSA certificates with SPIFFE URI SANs) whose roots
 * can rotate, leaf certificates per service that are re-issued on rotation and before expiry, and
 * intentions (from `service-intentions` config entries) for authorize and the intention queries. @internal
 */
export class FakeConnect {
  readonly #options: ConnectOptions;
  readonly #config: ConfigEntries;
  #roots: Root[] = [];
  readonly #leaves = new Map<string, Leaf>();
  #rootsIndex = 0;
  #ready: Promise<void> | undefined;
  /** Issuances under way, by service: concurrent first requests share one leaf, as Consul's cache does. */
  readonly #issuing = new Map<string, Promise<void>>();
  #closed = false;

  constructor(options: ConnectOptions, config: ConfigEntries) {
    this.#options = options;
    this.#config = config;
  }

  get trustDomain(): string {
    return this.#options.trustDomain;
  }

  /** The active root, created on first use. */
  async active(): Promise<TestCertificateAuthority> {
    this.#ready ??= this.#addRoot();
    await this.#ready;
    const active = this.#roots.at(-1);
    if (active === undefined) throw new Error("the fake CA has no root");
    return active.ca;
  }

  get rootsIndex(): number {
    return this.#rootsIndex;
  }

  /** `/v1/connect/ca/roots` and `/v1/agent/connect/ca/roots`. */
  rootsBody(withTrustDomain: boolean): unknown {
    const activeId = this.#roots.at(-1)?.ca.id ?? "";
    return {
      ActiveRootID: activeId,
      ...(withTrustDomain ? { TrustDomain: this.trustDomain } : {}),
      Roots: this.#roots.map(({ ca, index }, i) => ({
        ID: ca.id,
        Name: "Consul CA Root Cert",
        SerialNumber: i + 1,
        SigningKeyID: ca.signingKeyId,
        ExternalTrustDomain: this.trustDomain.replace(/\.consul$/, ""),
        NotBefore: iso(ca.notBefore),
        NotAfter: iso(ca.notAfter),
        RootCert: ca.rootPem,
        IntermediateCerts: null,
        Active: ca.id === activeId,
        PrivateKeyType: "ec",
        PrivateKeyBits: 256,
        CreateIndex: index,
        ModifyIndex: index,
      })),
    };
  }

  /** `?pem=true`: every root, PEM, one after the other. */
  rootsPem(): string {
    return this.#roots.map((r) => r.ca.rootPem.trimEnd() + "\n").join("");
  }

  /** Makes a new active root; the old ones stay trusted. Leaves are re-issued from the new root. */
  async rotate(): Promise<void> {
    await this.active();
    await this.#addRoot();
    // Issuances under way come from the old root: let them land, then issue from the new one.
    await Promise.all([...this.#issuing.values()]);
    await Promise.all([...this.#leaves.keys()].map((service) => this.#issue(service)));
    this.#options.wake();
  }

  /** Makes sure `service` has a current leaf; then `leafIndex`/`leafBody` answer for it. */
  async ensureLeaf(service: string): Promise<void> {
    const active = await this.active();
    const pending = this.#issuing.get(service);
    if (pending !== undefined) return pending;
    const leaf = this.#leaves.get(service);
    if (leaf === undefined || leaf.root !== active.id || leaf.cert.notAfter.getTime() <= Date.now()) await this.#issue(service);
  }

  leafIndex(service: string): number {
    return this.#leaves.get(service)?.index ?? 0;
  }

  /** `/v1/agent/connect/ca/leaf/:service`. */
  leafBody(service: string): unknown {
    const leaf = this.#leaves.get(service);
    if (leaf === undefined) return { status: 500, text: `no leaf for ${service}` };
    return {
      SerialNumber: leaf.cert.serialNumber,
      CertPEM: leaf.cert.certPem,
      PrivateKeyPEM: leaf.cert.keyPem,
      Service: service,
      ServiceURI: leaf.cert.uri ?? "",
      ValidAfter: iso(leaf.cert.notBefore),
      ValidBefore: iso(leaf.cert.notAfter),
      Namespace: "default",
      CreateIndex: leaf.createIndex,
      ModifyIndex: leaf.index,
    };
  }

  /** Re-issues a service's leaf now, as Consul does when one nears expiry. */
  async renew(service: string): Promise<void> {
    if (this.#closed) return;
    await this.#issue(service);
    this.#options.wake();
  }

  /**
   * `POST /v1/agent/connect/authorize` as Consul's `ConnectAuthorize`: the first intention (by
   * precedence) whose source matches decides; one with `Permissions` is L7 and counts as deny here;
   * none matching, the default policy. The client's trust domain is not checked (Consul leaves that to
   * the TLS handshake and intentions), only that the URI is a service's SPIFFE ID.
   *
   * @throws Error with Consul's 400 message when the URI is not a service identity
   */
  authorize(target: string, clientCertUri: string): { Authorized: boolean; Reason: string } {
    const m = SPIFFE_SERVICE.exec(clientCertUri);
    if (m === null) throw new Error(/^spiffe:\/\/[^/]+\/agent\//.test(clientCertUri) ? "ClientCertURI not a valid Service identifier" : "ClientCertURI not a valid Connect identifier");
    // As Consul: a caller of another partition than the target's (here always `default`) is refused.
    const partition = m[2] ?? "default";
    if (partition !== "default") return { Authorized: false, Reason: `Mismatched partitions: "${partition}" != "default"` };
    const namespace = m[3] ?? "";
    const source = m[5] ?? "";
    const intention = this.matching(source, target).find((i) => i.SourceNS === "*" || i.SourceNS === namespace);
    if (intention === undefined) return { Authorized: this.#options.defaultIntentionPolicy === "allow", Reason: "Default behavior configured by ACLs" };
    const l7 = intention.Permissions !== undefined && intention.Permissions.length > 0;
    const detail = l7 ? `Permissions: ${intention.Permissions?.length ?? 0}` : `Action: ${intention.Action.toUpperCase()}`;
    const text = `${intention.SourceNS}/${intention.SourceName} => ${intention.DestinationNS}/${intention.DestinationName} (Precedence: ${intention.Precedence}, ${detail})`;
    return l7 ? { Authorized: false, Reason: `Matched L7 intention: ${text}` } : { Authorized: intention.Action === "allow", Reason: `Matched L4 intention: ${text}` };
  }

  /** Every intention, from the `service-intentions` entries, most specific first. */
  intentions(): Intention[] {
    const out: Intention[] = [];
    for (const entry of this.#config.list("service-intentions")) out.push(...fromEntry(entry));
    return out.sort((a, b) => b.Precedence - a.Precedence);
  }

  /** The intentions that apply from `source` to `destination`, in evaluation order. */
  matching(source: string, destination: string): Intention[] {
    return this.intentions().filter((i) => (i.SourceName === source || i.SourceName === "*") && (i.DestinationName === destination || i.DestinationName === "*"));
  }

  /** Stops renewal timers; renewals under way are dropped. */
  close(): void {
    this.#closed = true;
    for (const leaf of this.#leaves.values()) clearTimeout(leaf.timer);
  }

  async #addRoot(): Promise<void> {
    const ca = await TestCertificateAuthority.create({ trustDomain: this.trustDomain, commonName: `Consul CA ${this.#roots.length + 1}` });
    this.#rootsIndex = this.#options.bump();
    this.#roots.push({ ca, index: this.#rootsIndex });
  }

  #issue(service: string): Promise<void> {
    const pending = this.#issuing.get(service);
    if (pending !== undefined) return pending;
    const issuing = this.#mint(service).finally(() => this.#issuing.delete(service));
    this.#issuing.set(service, issuing);
    return issuing;
  }

  async #mint(service: string): Promise<void> {
    const ca = await this.active();
    const previous = this.#leaves.get(service);
    clearTimeout(previous?.timer);
    // As Consul's CA: valid from a minute ago (clock skew) until the lifetime from now.
    const now = Date.now();
    const uri = ca.spiffeId(service, { datacenter: this.#options.datacenter });
    const cert = await ca.issue({ uri, notBefore: new Date(now - 60_000), notAfter: new Date(now + this.#options.leafValidForMs) });
    if (this.#closed) return;
    const index = this.#options.bump();
    const leaf: Leaf = { cert, root: ca.id, index, createIndex: index };
    // Consul renews a leaf before it expires; a blocking leaf query then returns the new one.
    const renewIn = now + this.#options.leafValidForMs * 0.8 - Date.now();
    leaf.timer = setTimeout(() => void this.renew(service), Math.max(0, Math.min(renewIn, 2_147_483_647)));
    leaf.timer.unref();
    this.#leaves.set(service, leaf);
  }
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function fromEntry(entry: ConfigEntry): Intention[] {
  const destination = entry.Name;
  const sources = Array.isArray(entry.Sources) ? (entry.Sources as Record<string, unknown>[]) : [];
  return sources.map((s) => {
    const name = typeof s.Name === "string" ? s.Name : "";
    // Consul's precedence: exact to exact 9, any to exact 8, exact to any 6, any to any 5.
    const precedence = (destination === "*" ? 5 : 8) + (name === "*" ? 0 : 1);
    const permissions = Array.isArray(s.Permissions) ? s.Permissions : undefined;
    return {
      Description: typeof s.Description === "string" ? s.Description : "",
      SourceNS: typeof s.Namespace === "string" && s.Namespace !== "" ? s.Namespace : "default",
      SourceName: name,
      DestinationNS: "default",
      DestinationName: destination,
      SourceType: "consul",
      Action: s.Action === "deny" ? "deny" : "allow",
      ...(permissions === undefined ? {} : { Permissions: permissions }),
      Meta: {},
      Precedence: precedence,
      CreateIndex: entry.CreateIndex,
      ModifyIndex: entry.ModifyIndex,
    } satisfies Intention;
  });
}
