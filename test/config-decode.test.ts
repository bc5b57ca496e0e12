import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeConsulEntries, decodeConsulEntry, isMeshError, MeshError, validateServiceConfig, type ServiceConfig, meshErrorOf } from "proxyless";
import { consulSample } from "./helpers/consul-samples.ts";

const samples = (file: string): Record<string, unknown>[] => consulSample(file) as Record<string, unknown>[];
/** The subsets the documented routers, splitters and failovers of `web` name, as the examples page assumes. */
const WEB_SUBSETS = { v1: { Filter: "Service.Meta.version == v1" }, v2: { Filter: "Service.Meta.version == v2" }, canary: { Filter: '"canary" in Service.Tags' } };

function rejects(entry: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => decodeConsulEntry(entry),
    (err: unknown) => {
      assert.ok(err instanceof MeshError && err.code === "ERR_INVALID_CONFIG", String(err));
      assert.equal(err.details.field, field);
      assert.equal(err.details.entry, `${(entry as { Kind: string }).Kind}/${(entry as { Name: string }).Name}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe("decodeConsulEntry on Consul's documented entries", () => {
  it("decodes the service-router samples: header and query matches to a subset, path prefix to another service, gRPC path, retries", () => {
    assert.deepEqual(decodeConsulEntry(consulSample("config-service-router.json")).config, {
      router: {
        routes: [
          { match: { headers: [{ name: "x-debug", exact: "1" }] }, destination: { service: "web", subset: "canary" } },
          { match: { query: [{ name: "x-debug", exact: "1" }] }, destination: { service: "web", subset: "canary" } },
        ],
      },
    });
    const [admin, , billing, retries] = samples("config-service-router.examples.json").map((e) => decodeConsulEntry(e));
    assert.deepEqual(admin?.config, { router: { routes: [{ match: { pathPrefix: "/admin" }, destination: { service: "admin" } }] } });
    assert.deepEqual(billing?.config.router?.routes[0]?.match, { pathExact: "/mycompany.BillingService/GenerateInvoice" });
    assert.deepEqual(retries?.config.router?.routes[0]?.destination, {
      service: "procurement",
      requestTimeoutMs: 15_000,
      numRetries: 5,
      retryOnConnectFailure: true,
      retryOn: ["reset"],
    });
  });

  it("decodes the service-splitter samples with their weights, subsets, services and header changes", () => {
    assert.deepEqual(decodeConsulEntry(consulSample("config-service-splitter.json")).config, {
      splitter: { splits: [{ weight: 90, subset: "v1" }, { weight: 10, subset: "v2" }] },
    });
    const [, rewrite, headers] = samples("config-service-splitter.examples.json").map((e) => decodeConsulEntry(e).config);
    assert.deepEqual(rewrite, { splitter: { splits: [{ weight: 50 }, { weight: 50, service: "web-rewrite" }] } });
    assert.deepEqual(headers?.splitter?.splits[1], { weight: 10, subset: "v2", responseHeaders: { set: { "X-Web-Version": "v2" } } });
  });

  it("decodes the service-resolver samples: subsets, redirect, failover by datacenters and by targets, maglev", () => {
    assert.deepEqual(decodeConsulEntry(consulSample("config-service-resolver.json")).config, {
      resolver: { subsets: { v1: { filter: "Service.Meta.version == v1" }, v2: { filter: "Service.Meta.version == v2" } }, defaultSubset: "v1" },
    });
    const examples = samples("config-service-resolver.examples.json").map((e) => (e.Name === "web" && e.Failover !== undefined ? { ...e, Subsets: WEB_SUBSETS } : e));
    const [, redirect, byDatacenter, byTargets, nsDatacenter, nsService, maglev] = examples.map((e) => decodeConsulEntry(e));
    assert.deepEqual(redirect?.config, { resolver: { redirect: { service: "web", datacenter: "dc2" } } });
    assert.deepEqual(byDatacenter?.config.resolver?.failover, { v2: { targets: [{ datacenter: "dc2" }] }, "*": { targets: [{ datacenter: "dc3" }, { datacenter: "dc4" }] } });
    assert.equal(byDatacenter?.config.resolver?.connectTimeoutMs, 15_000);
    assert.deepEqual(byTargets?.config.resolver?.failover, { "*": { targets: [{ datacenter: "dc3" }, { peer: "peer-01" }] } });
    // The Enterprise examples decode, in their own namespace; decodeConsulEntries leaves them out.
    assert.equal(nsDatacenter?.namespace, "primary");
    assert.deepEqual(nsService?.config.resolver?.failover, { "*": { targets: [{ service: "product-api-backup", namespace: "secondary" }] } });
    assert.deepEqual(maglev?.config, { loadBalancer: { policy: "maglev", config: { hashPolicies: [{ field: "header", name: "x-user-id" }] } } });
  });

  it("refuses the failover example on its own, as Consul does: it names subset v2, which that entry does not define", () => {
    const failover = samples("config-service-resolver.examples.json")[2];
    rejects(failover, "Failover.v2", /not a subset/);
  });

  it("decodes the service-defaults samples: protocol and upstream limits", () => {
    assert.deepEqual(decodeConsulEntry(consulSample("config-service-defaults.json")).config, { defaults: { protocol: "http" } });
    const [, dashboard] = samples("config-service-defaults.examples.json").map((e) => decodeConsulEntry(e));
    assert.deepEqual(dashboard?.config.defaults?.upstreamDefaults, { limits: { maxConnections: 512, maxPendingRequests: 512, maxConcurrentRequests: 512 } });
  });

  it("accepts RE2's named groups in regexes, as Consul (Envoy) does", () => {
    const entry = { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathRegex: "/users/(?P<id>[0-9]+)", Header: [{ Name: "x-v", Regex: "(?P<major>[0-9]+)\\..*" }] } } }] };
    assert.equal(decodeConsulEntry(entry).config.router?.routes[0]?.match?.pathRegex, "/users/(?P<id>[0-9]+)");
  });

  it("carries ChoiceCount and ring sizes over, and skips SourceIP hashing", () => {
    assert.deepEqual(decodeConsulEntry({ Kind: "service-resolver", Name: "a", LoadBalancer: { Policy: "least_request", LeastRequestConfig: { ChoiceCount: 3 } } }).config, {
      loadBalancer: { policy: "least_request", config: { choiceCount: 3 } },
    });
    const ring = { Policy: "ring_hash", RingHashConfig: { MinimumRingSize: 2048 }, HashPolicies: [{ SourceIP: true }, { Field: "cookie", FieldValue: "s", Terminal: true }] };
    assert.deepEqual(decodeConsulEntry({ Kind: "service-resolver", Name: "a", LoadBalancer: ring }).config, {
      loadBalancer: { policy: "ring_hash", config: { minimumRingSize: 2048, hashPolicies: [{ field: "cookie", name: "s", terminal: true }] } },
    });
  });

  it("merges a service's entries with decodeConsulEntries and leaves other namespaces out", () => {
    const all = [...samples("config-service-defaults.examples.json"), consulSample("config-service-resolver.json"), consulSample("config-service-splitter.json")];
    const configs = decodeConsulEntries(all);
    assert.deepEqual(Object.keys(configs).sort(), ["dashboard", "test-destination", "web"]);
    assert.deepEqual(Object.keys(configs.web ?? {}).sort(), ["defaults", "resolver", "splitter"]);
    assert.throws(() => decodeConsulEntries([consulSample("config-service-defaults.json"), consulSample("config-service-defaults.json")]), /given twice/);
  });
});

describe("invalid entries name the entry and the Consul field", () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["splits that do not sum to 100", { Kind: "service-splitter", Name: "web", Splits: [{ Weight: 90 }, { Weight: 9.99, ServiceSubset: "v2" }] }, "Splits", /sum to 100, not 99.99/],
    ["a path prefix without /", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathPrefix: "admin" } } }] }, "Routes[0].Match.HTTP.PathPrefix", /start with "\/"/],
    ["two header conditions", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { Header: [{ Name: "x", Exact: "1", Prefix: "2" }] } } }] }, "Routes[0].Match.HTTP.Header[0]", /only one of/],
    ["a regex JavaScript cannot compile", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathRegex: "/a(" } } }] }, "Routes[0].Match.HTTP.PathRegex", /regular expression/],
    ["an unknown method", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { Methods: ["FETCH"] } } }] }, "Routes[0].Match.HTTP.Methods[0]", /not a method/],
    ["an unknown retry condition", { Kind: "service-router", Name: "web", Routes: [{ Destination: { RetryOn: ["sometimes"] } }] }, "Routes[0].Destination.RetryOn[0]", /not a retry condition/],
    ["a subset a router names badly", { Kind: "service-router", Name: "web", Routes: [{ Destination: { ServiceSubset: "V_1" } }] }, "Routes[0].Destination.ServiceSubset", /subset name/],
    ["a bad filter", { Kind: "service-resolver", Name: "web", Subsets: { v1: { Filter: "Service.Meta.version ==" } } }, "Subsets.v1.Filter", /filter expression/],
    ["a default subset that is not defined", { Kind: "service-resolver", Name: "web", DefaultSubset: "v3" }, "DefaultSubset", /no subset named "v3"/],
    ["a duration that does not parse", { Kind: "service-resolver", Name: "web", ConnectTimeout: "soon" }, "ConnectTimeout", /duration/],
    ["a wrong type", { Kind: "service-splitter", Name: "web", Splits: [{ Weight: "90" }] }, "Splits[0].Weight", /expected a number/],
    ["an unknown protocol", { Kind: "service-defaults", Name: "web", Protocol: "smtp" }, "Protocol", /not a protocol/],
    ["an Enterprise namespace in a route", { Kind: "service-router", Name: "web", Routes: [{ Destination: { Namespace: "other" } }] }, "Routes[0].Destination.Namespace", /not supported/],
  ];
  for (const [what, entry, field, message] of cases) it(`refuses ${what}`, () => rejects(entry, field, message));

  it("refuses an entry with no name or an unknown kind", () => {
    assert.throws(() => decodeConsulEntry({ Kind: "service-router" }), /needs a Name/);
    assert.throws(() => decodeConsulEntry({ Kind: "proxy-defaults", Name: "global" }), /expected one of service-router/);
    assert.throws(() => decodeConsulEntry("web"), /expected an object/);
  });
});

describe("validateServiceConfig on the typed model", () => {
  const bad: [string, unknown, string][] = [
    ["an unknown field", { router: { routes: [{ match: { path: "/x" } }] } }, "router.routes[0].match.path"],
    ["two path matches", { router: { routes: [{ match: { pathExact: "/a", pathPrefix: "/a" } }] } }, "router.routes[0].match"],
    ["a prefix rewrite without a path match", { router: { routes: [{ destination: { prefixRewrite: "/v2" } }] } }, "router.routes[0].destination.prefixRewrite"],
    ["a split twice to one destination", { splitter: { splits: [{ weight: 50, subset: "v1" }, { weight: 50, subset: "v1" }] } }, "splitter.splits[1]"],
    ["a weight over 100", { splitter: { splits: [{ weight: 101 }] } }, "splitter.splits[0].weight"],
    ["a redirect with a failover", { resolver: { redirect: { service: "b" }, failover: { "*": { targets: [{ service: "c" }] } } } }, "resolver.redirect"],
    ["a failover with no target", { resolver: { failover: { "*": { targets: [] } } } }, "resolver.failover.*.targets"],
    ["a header value with a newline", { router: { routes: [{ destination: { requestHeaders: { set: { "x-a": "1\r\nx-b: 2" } } } }] } }, "router.routes[0].destination.requestHeaders.set.x-a"],
    ["a status code out of range", { router: { routes: [{ destination: { retryOnStatusCodes: [99] } }] } }, "router.routes[0].destination.retryOnStatusCodes[0]"],
    // What undici (or grpc-js) would refuse on every request is refused when the config is applied.
    ["a prefix rewrite without a leading '/'", { router: { routes: [{ match: { pathPrefix: "/a" }, destination: { prefixRewrite: "v2" } }] } }, "router.routes[0].destination.prefixRewrite"],
    ["a prefix rewrite with a space", { router: { routes: [{ match: { pathPrefix: "/a" }, destination: { prefixRewrite: "/v 2" } }] } }, "router.routes[0].destination.prefixRewrite"],
    ["a header value with a control character", { router: { routes: [{ destination: { requestHeaders: { add: { "x-a": "a\u0001b" } } } }] } }, "router.routes[0].destination.requestHeaders.add.x-a"],
    ["a header value beyond Latin-1", { splitter: { splits: [{ weight: 100, requestHeaders: { set: { "x-a": "\u0100" } } }] } }, "splitter.splits[0].requestHeaders.set.x-a"],
    ["a header value beyond ASCII on a response", { router: { routes: [{ destination: { responseHeaders: { set: { "x-a": "caf\u00e9" } } } }] } }, "router.routes[0].destination.responseHeaders.set.x-a"],
    ["a change to host", { router: { routes: [{ destination: { requestHeaders: { add: { Host: "other" } } } }] } }, "router.routes[0].destination.requestHeaders.add"],
    ["a change to content-length", { splitter: { splits: [{ weight: 100, requestHeaders: { remove: ["Content-Length"] } }] } }, "splitter.splits[0].requestHeaders.remove[0]"],
    ["a header name that is not a token", { router: { routes: [{ destination: { requestHeaders: { set: { "x a": "1" } } } }] } }, "router.routes[0].destination.requestHeaders.set"],
    ["a gRPC binary header name", { router: { routes: [{ destination: { requestHeaders: { set: { "x-id-bin": "1" } } } }] } }, "router.routes[0].destination.requestHeaders.set"],
    // Node's HTTP/2 (under gRPC) refuses these: a gRPC call would retry its connection until its deadline.
    ["a change to http2-settings", { router: { routes: [{ destination: { requestHeaders: { set: { "HTTP2-Settings": "x" } } } }] } }, "router.routes[0].destination.requestHeaders.set"],
    ["a second value of a header HTTP/2 carries once", { router: { routes: [{ destination: { requestHeaders: { add: { date: "a" } } } }] } }, "router.routes[0].destination.requestHeaders.add"],
    ["a second authorization", { splitter: { splits: [{ weight: 100, requestHeaders: { add: { Authorization: "b" } } }] } }, "splitter.splits[0].requestHeaders.add"],
    ["a header gRPC reserves", { router: { routes: [{ destination: { requestHeaders: { set: { "grpc-timeout": "1S" } } } }] } }, "router.routes[0].destination.requestHeaders.set"],
    ["a response content-encoding (fetch would decode the body wrongly)", { router: { routes: [{ destination: { responseHeaders: { set: { "content-encoding": "gzip" } } } }] } }, "router.routes[0].destination.responseHeaders.set"],
    ["a fault header that is not a header name", { router: { routes: [{ fault: { abort: { status: 503, header: "x y" } } }] } }, "router.routes[0].fault.abort.header"],
  ];
  for (const [what, config, field] of bad) {
    it(`refuses ${what}, naming ${field}`, () => {
      assert.throws(
        () => validateServiceConfig(config, "web"),
        (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === field,
      );
    });
  }

  it("does not show a refused header value, which may be a credential", () => {
    assert.throws(
      () => validateServiceConfig({ router: { routes: [{ destination: { requestHeaders: { set: { authorization: "Bearer s3cret\n" } } } }] } }, "web"),
      (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && !err.message.includes("s3cret") && /U\+000A at position 13/.test(err.message),
    );
  });

  it("accepts weights at 0.01 precision that sum to 100", () => {
    const config: ServiceConfig = { splitter: { splits: [{ weight: 99.99 }, { weight: 0.01, subset: "canary" }] } };
    assert.equal(validateServiceConfig(config, "web"), config);
  });
});

describe("proxyless extensions in a Consul entry's Meta", () => {
  it("reads mirror and fault per route, and sticky splitting, from Meta.proxyless", () => {
    const router = decodeConsulEntry({
      Kind: "service-router",
      Name: "web",
      Meta: { proxyless: JSON.stringify({ routes: { 0: { mirror: { service: "web-next", percent: 5 }, fault: { abort: { status: 503, percent: 1 } } } } }) },
      Routes: [{ Match: { HTTP: { PathPrefix: "/api" } } }],
    });
    assert.deepEqual(router.config.router?.routes[0], { match: { pathPrefix: "/api" }, mirror: { service: "web-next", percent: 5 }, fault: { abort: { status: 503, percent: 1 } } });
    const splitter = decodeConsulEntry({ Kind: "service-splitter", Name: "web", Meta: { proxyless: '{"sticky":{"cookie":"session"}}' }, Splits: [{ Weight: 100 }] });
    assert.deepEqual(splitter.config.splitter?.sticky, { cookie: "session" });
  });

  it("names Meta.proxyless in errors", () => {
    rejects({ Kind: "service-router", Name: "web", Meta: { proxyless: "{not json" }, Routes: [] }, "Meta.proxyless", /expected JSON/);
    rejects({ Kind: "service-router", Name: "web", Meta: { proxyless: '{"routes":{"3":{}}}' }, Routes: [{}] }, "Meta.proxyless.routes.3", /no route 3/);
    rejects({ Kind: "service-router", Name: "web", Meta: { proxyless: '{"routes":{"0":{"mirror":{"percent":500}}}}' }, Routes: [{}] }, "Meta.proxyless.routes.0.mirror.percent", /from 0 to 100/);
    rejects({ Kind: "service-splitter", Name: "web", Meta: { proxyless: '{"sticky":{}}' }, Splits: [{ Weight: 100 }] }, "Meta.proxyless.sticky", /header or cookie/);
  });
});
