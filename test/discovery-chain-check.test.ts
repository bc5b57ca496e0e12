import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulRegistry, createMesh, type ConfigAppliedEvent, type ConfigRejectedEvent, type ConsulEntryKind, type Mesh, type ServiceConfig } from "proxyless";
import { FakeConsul, MockRegistry } from "proxyless/testing";
import { Backend } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";
import { discoveryChainProblem } from "../src/config/discovery-chain.ts";

// The entries below are the data of Consul's own validation tests, written as the JSON `consul config
// write` takes: TestStore_ConfigEntry_GraphValidation (agent/consul/state/config_entry_test.go) and
// TestCompile (agent/consul/discoverychain/compile_test.go), in hashicorp/consul. Each case applies
// `entries` (which Consul accepts), then one more write or delete, as those tests do. The services are
// named as there: main, other, next, backup.

type Entry = Readonly<Record<string, unknown>> & { readonly Kind: string; readonly Name: string };

interface Case {
  /** The test's name in Consul. */
  readonly name: string;
  readonly entries: readonly Entry[];
  /** The write, or the delete, under test. */
  readonly add?: Entry;
  readonly remove?: readonly [ConsulEntryKind, string];
  /** The path requested before and after, to see which config serves. */
  readonly path?: string;
}

interface Refused extends Case {
  /** What Consul's test expects the error to contain. */
  readonly consul: string;
  /** The whole message the mesh gives (after `Invalid configuration at '<field>': `). */
  readonly message: string;
  /** The field of the refused config. */
  readonly field: string;
}

const defaults = (name: string, protocol: string): Entry => ({ Kind: "service-defaults", Name: name, Protocol: protocol });
const versions = { v1: { Filter: "Service.Meta.version == v1" }, v2: { Filter: "Service.Meta.version == v2" } };
const routeToSubsetOther = {
  Kind: "service-router",
  Name: "main",
  Routes: [{ Match: { HTTP: { PathExact: "/other" } }, Destination: { ServiceSubset: "other" } }],
};

/** Chains Consul refuses, and the mesh refuses with them. */
const REFUSED: readonly Refused[] = [
  {
    name: "cannot route to a service using tcp",
    entries: [defaults("main", "http"), defaults("other", "tcp")],
    add: { Kind: "service-router", Name: "main", Routes: [{ Match: { HTTP: { PathExact: "/other" } }, Destination: { Service: "other" } }] },
    path: "/other",
    consul: "uses inconsistent protocols",
    field: "router.routes[0].destination",
    message: 'discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "http" (through service-router "main" Routes[0].Destination)',
  },
  {
    name: "cannot split to a service using tcp",
    entries: [defaults("main", "http"), defaults("other", "tcp")],
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90 }, { Weight: 10, Service: "other" }] },
    consul: "uses inconsistent protocols",
    field: "splitter.splits[1]",
    message: 'discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "http" (through service-splitter "main" Splits[1])',
  },
  {
    name: "cannot redirect to a service using a different protocol",
    entries: [defaults("main", "grpc"), defaults("other", "tcp"), { Kind: "service-resolver", Name: "main", ConnectTimeout: "33s" }],
    add: { Kind: "service-resolver", Name: "main", Redirect: { Service: "other" } },
    consul: "uses inconsistent protocols",
    field: "resolver.redirect",
    message: 'discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "grpc" (through service-resolver "main" Redirect)',
  },
  {
    name: "cannot failover to a service using a different protocol",
    entries: [defaults("main", "grpc"), defaults("other", "tcp"), { Kind: "service-resolver", Name: "main", ConnectTimeout: "33s" }],
    add: { Kind: "service-resolver", Name: "main", Failover: { "*": { Service: "other" } } },
    consul: "uses inconsistent protocols",
    field: "resolver.failover.*.targets[0]",
    message: 'discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "grpc" (through service-resolver "main" Failover["*"].Targets[0])',
  },
  {
    name: "cannot redirect to a subset that does not exist",
    entries: [{ Kind: "service-resolver", Name: "other", ConnectTimeout: "33s" }],
    add: { Kind: "service-resolver", Name: "main", Redirect: { Service: "other", ServiceSubset: "v1" } },
    consul: 'does not have a subset named "v1"',
    field: "resolver.redirect",
    message: 'service "other" does not have a subset named "v1" (through service-resolver "main" Redirect)',
  },
  {
    name: "cannot introduce circular resolver redirect",
    entries: [{ Kind: "service-resolver", Name: "other", Redirect: { Service: "main" } }],
    add: { Kind: "service-resolver", Name: "main", Redirect: { Service: "other" } },
    consul: "detected circular resolver redirect",
    field: "resolver.redirect",
    message: 'detected circular resolver redirect: [main -> other -> main] (through service-resolver "main" Redirect -> service-resolver "other" Redirect)',
  },
  {
    name: "cannot introduce circular split",
    // Consul's case also writes proxy-defaults (global protocol http), which the mesh does not read.
    entries: [{ Kind: "service-splitter", Name: "other", Splits: [{ Weight: 100, Service: "main" }] }],
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 100, Service: "other" }] },
    consul: "detected circular reference",
    field: "splitter.splits",
    message: 'detected circular reference: [splitter:main -> splitter:other -> splitter:main] (through service-splitter "main" Splits -> service-splitter "other" Splits)',
  },
  {
    name: "splitter fails with tcp protocol",
    entries: [defaults("main", "tcp")],
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 100 }] },
    consul: "does not permit advanced routing or splitting behavior",
    field: "splitter",
    message: 'discovery chain "main" uses a protocol "tcp" that does not permit advanced routing or splitting behavior',
  },
  {
    name: "router fails with tcp protocol",
    entries: [defaults("main", "tcp"), { Kind: "service-resolver", Name: "main", Subsets: { other: { Filter: "Service.Meta.version == other" } } }],
    add: routeToSubsetOther,
    path: "/other",
    consul: "does not permit advanced routing or splitting behavior",
    field: "router",
    message: 'discovery chain "main" uses a protocol "tcp" that does not permit advanced routing or splitting behavior',
  },
  {
    name: "cannot change to tcp protocol after splitter created",
    entries: [
      defaults("main", "http"),
      { Kind: "service-resolver", Name: "main", Subsets: versions },
      { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] },
    ],
    add: defaults("main", "tcp"),
    consul: "does not permit advanced routing or splitting behavior",
    field: "defaults.protocol",
    message: 'discovery chain "main" uses a protocol "tcp" that does not permit advanced routing or splitting behavior',
  },
  {
    name: "cannot change to tcp protocol after router created",
    entries: [defaults("main", "http"), { Kind: "service-resolver", Name: "main", Subsets: { other: { Filter: "Service.Meta.version == other" } } }, routeToSubsetOther],
    add: defaults("main", "tcp"),
    path: "/other",
    consul: "does not permit advanced routing or splitting behavior",
    field: "defaults.protocol",
    message: 'discovery chain "main" uses a protocol "tcp" that does not permit advanced routing or splitting behavior',
  },
];

/** Chains Consul accepts: the mesh applies them. */
const ACCEPTED: readonly Case[] = [
  {
    name: "splitter works with http protocol",
    // Consul's case also writes proxy-defaults with protocol tcp, which main's service-defaults overrides.
    entries: [defaults("main", "http"), { Kind: "service-resolver", Name: "main", Subsets: versions }],
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] },
  },
  {
    name: "splitter works with http protocol (from proxy-defaults)",
    entries: [{ Kind: "proxy-defaults", Name: "global", Config: { protocol: "http" } }, { Kind: "service-resolver", Name: "main", Subsets: versions }],
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] },
  },
  {
    name: "can remove global default protocol after splitter created if service default overrides it",
    entries: [
      { Kind: "proxy-defaults", Name: "global", Config: { protocol: "http" } },
      defaults("main", "http"),
      { Kind: "service-resolver", Name: "main", Subsets: versions },
      { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] },
    ],
    // Deleting proxy-defaults changes nothing the mesh reads; this re-writes main's splitter instead.
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] },
  },
  {
    name: "redirect to a subset that does exist is fine",
    entries: [{ Kind: "service-resolver", Name: "other", ConnectTimeout: "33s", Subsets: { v1: { Filter: "Service.Meta.version == v1" } } }],
    add: { Kind: "service-resolver", Name: "main", Redirect: { Service: "other", ServiceSubset: "v1" } },
  },
  {
    // TestCompile "split bypasses next splitter".
    name: "split bypasses next splitter",
    entries: [
      defaults("main", "http"),
      defaults("next", "http"),
      // Written resolver first: Consul, too, refuses a splitter that names a subset not yet defined.
      { Kind: "service-resolver", Name: "next", Subsets: { bypassed: { Filter: "Service.Meta.version == bypass" }, "not-bypassed": { Filter: "Service.Meta.version != bypass" } } },
      { Kind: "service-splitter", Name: "next", Splits: [{ Weight: 100, ServiceSubset: "not-bypassed" }] },
    ],
    add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 100, Service: "next", ServiceSubset: "bypassed" }] },
  },
  {
    // TestCompile "circular resolver failover": failover is not followed further, so this is no loop.
    name: "circular resolver failover",
    entries: [{ Kind: "service-resolver", Name: "backup", Failover: { "*": { Service: "main" } } }],
    add: { Kind: "service-resolver", Name: "main", Failover: { "*": { Service: "backup" } } },
  },
];

/**
 * Consul refuses these because a service with no protocol of its own is `tcp` there (or has the
 * protocol of proxy-defaults). The mesh does not read proxy-defaults, so it judges only protocols a
 * service-defaults entry declares, and applies these: it never refuses what Consul may have accepted.
 */
const ACCEPTED_UNLIKE_CONSUL: readonly Case[] = [
  { name: "splitter fails without default protocol", entries: [], add: { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 100 }] } },
  {
    name: "router fails without default protocol",
    entries: [{ Kind: "service-resolver", Name: "main", Subsets: { other: { Filter: "Service.Meta.version == other" } } }],
    add: routeToSubsetOther,
  },
  {
    name: "cannot remove default protocol after splitter created",
    entries: [
      defaults("main", "http"),
      { Kind: "service-resolver", Name: "main", Subsets: versions },
      { Kind: "service-splitter", Name: "main", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] },
    ],
    remove: ["service-defaults", "main"],
  },
  {
    name: "cannot remove default protocol after router created",
    entries: [defaults("main", "http"), { Kind: "service-resolver", Name: "main", Subsets: { other: { Filter: "Service.Meta.version == other" } } }, routeToSubsetOther],
    remove: ["service-defaults", "main"],
  },
];

const SERVICES = ["main", "other", "next", "backup"] as const;

describe("the discovery chain is checked as Consul checks it when config is applied", () => {
  const backends = new Map<string, Backend>();
  before(async () => {
    for (const name of ["main", "main-other", "other"]) backends.set(name, await Backend.start(name));
  });
  after(() => Promise.all([...backends.values()].map((b) => b.close())));

  /** A mesh that watches every service of the cases, so that their configs are known when one is applied. */
  function world(): { mesh: Mesh; registry: MockRegistry; rejected: ConfigRejectedEvent[]; applied: ConfigAppliedEvent[] } {
    const endpoint = (name: string, version: string) => ({ ...backends.get(name)!.endpoint, meta: { version } });
    const registry = new MockRegistry({ main: [endpoint("main", "v1"), endpoint("main-other", "other")], other: [endpoint("other", "v1")] });
    const mesh = createMesh({ registry });
    const rejected: ConfigRejectedEvent[] = [];
    const applied: ConfigAppliedEvent[] = [];
    mesh.on("config_rejected", (e) => rejected.push(e));
    mesh.on("config_applied", (e) => applied.push(e));
    for (const s of SERVICES) mesh.client(s);
    return { mesh, registry, rejected, applied };
  }

  /** Writes entries as `consul config write` does; proxy-defaults is Consul's alone (the mesh does not read it). */
  function write(registry: MockRegistry, entries: readonly Entry[]): void {
    for (const entry of entries) if (entry.Kind !== "proxy-defaults") registry.applyConsulEntries(entry);
  }

  /** The service whose instance answers a request to main (main has two instances: main and main-other). */
  async function served(mesh: Mesh, path: string): Promise<string> {
    const res = await mesh.client("main").request({ path });
    await res.body.dump();
    return res.headers["x-instance"] === "other" ? "other" : "main";
  }

  for (const c of REFUSED) {
    it(`refuses what Consul refuses: ${c.name}`, async () => {
      const { mesh, registry, rejected } = world();
      try {
        write(registry, c.entries);
        assert.equal(rejected.map((e) => e.error.message).join("\n"), "", "Consul accepts the entries before the write");
        const path = c.path ?? "/";
        const before = await served(mesh, path);
        const config = mesh.inspect(c.add!.Name)?.config;
        write(registry, [c.add!]);
        assert.equal(rejected.length, 1);
        const { service, error } = rejected[0]!;
        assert.equal(service, c.add!.Name);
        assert.equal(error.code, "ERR_INVALID_CONFIG");
        assert.ok(error.message.includes(c.consul), `Consul's words: ${error.message}`);
        assert.ok(error.message.startsWith(`Invalid configuration at '${c.field}': ${c.message}. `), error.message);
        assert.equal(error.details.field, c.field);
        assert.equal(error.details.chain, "main");
        assert.deepEqual(mesh.inspect(c.add!.Name)?.config, config, "the last good config stays");
        assert.equal(await served(mesh, path), before, "and keeps serving");
      } finally {
        await mesh.close();
      }
    });
  }

  for (const c of [...ACCEPTED, ...ACCEPTED_UNLIKE_CONSUL]) {
    it(`applies what Consul accepts: ${c.name}`, async () => {
      const { mesh, registry, rejected, applied } = world();
      try {
        write(registry, c.entries);
        const count = applied.length;
        if (c.add !== undefined) write(registry, [c.add]);
        if (c.remove !== undefined) registry.deleteConsulEntry(...c.remove);
        assert.deepEqual(
          rejected.map((e) => e.error.message),
          [],
        );
        assert.equal(applied.length, count + 1);
        assert.equal(applied.at(-1)?.service, c.add?.Name ?? c.remove?.[1]);
      } finally {
        await mesh.close();
      }
    });
  }

  it("refuses a protocol change that breaks another service's accepted chain, and applies it once that chain changes", async () => {
    const { mesh, registry, rejected, applied } = world();
    try {
      write(registry, [
        defaults("main", "http"),
        defaults("other", "http"),
        { Kind: "service-router", Name: "main", Routes: [{ Match: { HTTP: { PathExact: "/other" } }, Destination: { Service: "other" } }] },
      ]);
      assert.equal(await served(mesh, "/other"), "other");
      write(registry, [defaults("other", "tcp")]);
      assert.equal(rejected.length, 1);
      const { service, error } = rejected[0]!;
      assert.equal(service, "other", "the config being applied is refused, not main's accepted router");
      assert.equal(error.details.field, "defaults.protocol");
      assert.equal(error.details.chain, "main");
      assert.match(error.message, /discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "http" \(through service-router "main" Routes\[0\]\.Destination\)/);
      assert.equal(mesh.inspect("other")?.config.defaults?.protocol, "http");
      assert.equal(await served(mesh, "/other"), "other", "main's router keeps serving");

      // An unrelated change does not report the refusal again, and it stays refused.
      registry.setConfig("backup", { resolver: { connectTimeoutMs: 1000 } });
      assert.equal(rejected.length, 1);
      assert.equal(mesh.inspect("other")?.config.defaults?.protocol, "http");

      // Once main's router is gone, other's waiting config no longer breaks a chain: it is applied.
      const otherApplied = new Promise<ConfigAppliedEvent>((resolve) => mesh.on("config_applied", (e) => e.service === "other" && resolve(e)));
      registry.deleteConsulEntry("service-router", "main");
      await otherApplied;
      assert.equal(mesh.inspect("other")?.config.defaults?.protocol, "tcp");
      assert.equal(rejected.length, 1);
      assert.ok(applied.some((e) => e.service === "main"));
      assert.equal(await served(mesh, "/other"), "main");
    } finally {
      await mesh.close();
    }
  });

  it("lands a chain written to Consul entry by entry, though the mesh hears each kind on its own watch", async () => {
    const fake = await FakeConsul.start();
    const put = async (path: string, body: unknown): Promise<void> => {
      const res = await request(`${fake.url}${path}`, { method: "PUT", body: JSON.stringify(body) });
      assert.equal(res.statusCode, 200, await res.body.text());
    };
    for (const name of ["main", "other"]) {
      await put("/v1/agent/service/register", { Name: name, ID: name, Address: "127.0.0.1", Port: backends.get(name)!.port, Meta: { version: "v1" } });
      await put("/v1/config", defaults(name, "http"));
    }
    const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, queriesPerSecond: 100 }) });
    const rejected: ConfigRejectedEvent[] = [];
    mesh.on("config_rejected", (e) => rejected.push(e));
    try {
      mesh.client("other");
      assert.equal(await served(mesh, "/other"), "main");
      // Consul accepts these in this order; the router's watch may answer before the resolver's.
      await put("/v1/config", { Kind: "service-resolver", Name: "other", Subsets: { v1: { Filter: "Service.Meta.version == v1" } } });
      await put("/v1/config", { Kind: "service-router", Name: "main", Routes: [{ Match: { HTTP: { PathPrefix: "/other" } }, Destination: { Service: "other", ServiceSubset: "v1" } }] });
      await until(() => mesh.inspect("main")?.config.router !== undefined && mesh.inspect("other")?.config.resolver !== undefined);
      assert.equal(await served(mesh, "/other"), "other");
      for (const { error } of rejected) assert.match(error.message, /does not have a subset named "v1"/, "at most the brief refusal of a router heard before its resolver");
    } finally {
      await mesh.close();
      await fake.close();
    }
  });

  it("judges only the services whose config the mesh knows: an unwatched target is checked when requests reach it", async () => {
    const registry = new MockRegistry({ main: [backends.get("main")!.endpoint] });
    const mesh = createMesh({ registry });
    const rejected: ConfigRejectedEvent[] = [];
    mesh.on("config_rejected", (e) => rejected.push(e));
    try {
      mesh.client("main");
      registry.applyConsulEntries({ Kind: "service-resolver", Name: "main", Redirect: { Service: "elsewhere", ServiceSubset: "v1" } });
      assert.deepEqual(rejected, [], "elsewhere's resolver is not known yet");
      await assert.rejects(mesh.client("main").request({ path: "/" }), /does not have a subset named 'v1'/);
      // Now known, its first config is news, not a change: main's chain does not refuse it.
      assert.deepEqual(mesh.inspect("elsewhere")?.config, {});
      assert.deepEqual(rejected, []);
    } finally {
      await mesh.close();
    }
  });
  it("lands configs that compile only together: a migration Consul accepted step by step, heard as its net change", async () => {
    const registry = new MockRegistry({ main: [backends.get("main")!.endpoint], other: [backends.get("other")!.endpoint] });
    const mesh = createMesh({ registry });
    const applied: string[] = [];
    mesh.on("config_applied", (e) => applied.push(e.service));
    try {
      mesh.client("main");
      mesh.client("other");
      const defaults = (name: string, protocol: string) => ({ Kind: "service-defaults", Name: name, Protocol: protocol });
      registry.applyConsulEntries([defaults("main", "http"), defaults("other", "http")]);
      registry.applyConsulEntries({ Kind: "service-router", Name: "main", Routes: [{ Match: { HTTP: { PathPrefix: "/o" } }, Destination: { Service: "other" } }] });
      // In Consul: the router deleted, main and other switched to grpc, the router written again; each
      // write valid. A blocking query returns the latest state: the mesh hears both protocols change.
      applied.length = 0;
      registry.applyConsulEntries(defaults("main", "grpc"));
      registry.applyConsulEntries(defaults("other", "grpc"));
      const protocol = (s: string) => mesh.inspect(s)?.config.defaults?.protocol;
      assert.deepEqual([protocol("main"), protocol("other")], ["grpc", "grpc"], "each alone breaks the other's old chain; together they compile");
      assert.deepEqual(applied.sort(), ["main", "other"]);
    } finally {
      await mesh.close();
    }
  });
});

describe("the chain walk follows Consul's compiler", () => {
  const chain = (configs: Readonly<Record<string, ServiceConfig>>, service = "main") => discoveryChainProblem(service, (s) => configs[s]);
  const http = { defaults: { protocol: "http" } } as const;
  const tcp = { defaults: { protocol: "tcp" } } as const;

  it("takes failover by subset, else '*', and follows it one step only", () => {
    const main: ServiceConfig = { ...http, resolver: { subsets: { v1: {} }, failover: { v1: { targets: [{ service: "other" }] } } } };
    assert.equal(chain({ main, other: tcp })?.rule, undefined, "a request without subset meets no failover");
    const routed: ServiceConfig = { ...main, router: { routes: [{ destination: { subset: "v1" } }] } };
    assert.equal(chain({ main: routed, other: tcp })?.message, 'discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "http"');
    // other's own failover is not followed from main's chain.
    assert.equal(chain({ main: routed, other: { ...http, resolver: { failover: { "*": { targets: [{ service: "far" }] } } } }, far: tcp }), undefined);
  });

  it("judges a target in another datacenter by the service's entries here, and leaves namespaces and peers alone", () => {
    const redirect = (ref: NonNullable<NonNullable<ServiceConfig["resolver"]>["redirect"]>): ServiceConfig => ({ ...http, resolver: { redirect: ref } });
    assert.equal(chain({ main: redirect({ datacenter: "dc2" }) }), undefined, "the same service elsewhere: no loop");
    assert.equal(chain({ main: redirect({ service: "other", datacenter: "dc2" }), other: tcp })?.rule, "protocol");
    assert.equal(chain({ main: redirect({ service: "other", namespace: "team" }), other: tcp }), undefined);
    assert.equal(chain({ main: redirect({ service: "other", peer: "east" }), other: tcp }), undefined);
  });

  it("meets a splitter only through a split without subset, and a split to its own service is no loop", () => {
    const other: ServiceConfig = { resolver: { subsets: { v1: {} } }, splitter: { splits: [{ weight: 50 }, { weight: 50, service: "main", subset: "v1" }] } };
    const main: ServiceConfig = { resolver: { subsets: { v1: {} } }, splitter: { splits: [{ weight: 50, subset: "v1" }, { weight: 50, service: "other" }] } };
    assert.equal(chain({ main, other }), undefined);
    const loop: ServiceConfig = { splitter: { splits: [{ weight: 50, service: "main" }, { weight: 50 }] } };
    assert.equal(chain({ main, other: loop })?.message, "detected circular reference: [splitter:main -> splitter:other -> splitter:main]");
  });

  it("follows the default subset of a redirect's target, and names a missing one's service", () => {
    const main: ServiceConfig = { resolver: { redirect: { service: "other" } } };
    assert.equal(chain({ main, other: { resolver: { subsets: { v2: {} }, defaultSubset: "v2" } } }), undefined);
    const router: ServiceConfig = { router: { routes: [{ destination: { service: "other", subset: "v3" } }] } };
    assert.deepEqual(chain({ main: router, other: {} }), {
      chain: "main",
      rule: "subset",
      message: 'service "other" does not have a subset named "v3"',
      path: [{ service: "main", consul: 'service-router "main" Routes[0].Destination', field: "router.routes[0].destination" }],
    });
    assert.equal(chain({ main: router }), undefined, "other's config is not known: not judged");
  });
});
