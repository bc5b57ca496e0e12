import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, MeshError, parseSpiffeId, validateServiceConfig, type IntentionSource, type Mesh, type RouteMatch } from "proxyless";
import { FakeConsul, MockRegistry } from "proxyless/testing";
import { compileMatch } from "../src/config/compile-match.ts";
import { compileFilter } from "../src/config/filter-expression.ts";
import { RequestView } from "../src/routing/request-view.ts";
import { consulAuthorizer } from "../src/security/consul-authorizer.ts";
import { TlsBackend } from "./helpers/tls-backend.ts";

// Consul's regexes (route PathRegex, header and query Regex, intention regexes, filter `matches`) are
// RE2's, as Go's regexp parses them. The expected results below are the facts of Go's regexp/syntax
// documentation (its syntax table, the ASCII and Perl classes, "\z at end of text", "\Q...\E literal
// text", the 1000 repeat limit) and Go's parse error strings.

/** A route whose only condition is a regex over the whole value of header `x-v`. */
function headerRegex(pattern: string): (value: string) => boolean {
  const matcher = compileMatch({ headers: [{ name: "x-v", regex: pattern }] });
  return (value) => matcher(new RequestView({ method: "GET", path: "/", headers: { "x-v": value } }));
}

function pathMatch(match: RouteMatch): (path: string) => boolean {
  const matcher = compileMatch(match);
  return (path) => matcher(new RequestView({ method: "GET", path, headers: {} }));
}

/** The median cost of one decision, in ms: 7 batches of 5 after a warm-up. */
function medianDecisionMs(decide: () => unknown): number {
  for (let i = 0; i < 3; i++) decide();
  const perDecision: number[] = [];
  for (let batch = 0; batch < 7; batch++) {
    const start = performance.now();
    for (let i = 0; i < 5; i++) decide();
    perDecision.push((performance.now() - start) / 5);
  }
  perDecision.sort((a, b) => a - b);
  return perDecision[3] ?? Infinity;
}

const KB10 = 10 * 1024;

describe("regexes run on RE2, in linear time", () => {
  it("decides classic catastrophic patterns on 10 KB values in under a millisecond each", () => {
    const cases: readonly (readonly [string, string])[] = [
      ["(a+)+$", `${"a".repeat(KB10)}!`],
      ["(a|a)*b", "a".repeat(KB10)],
      ["(a*)*b", "a".repeat(KB10)],
      ["(x+x+)+y", "x".repeat(KB10)],
      ["(\\w+\\s?)*$", `${"ab ".repeat(KB10 / 3)}!`],
      ["(.*a){12}", "a".repeat(KB10)],
    ];
    for (const [pattern, value] of cases) {
      const test = headerRegex(pattern);
      const expected = pattern === "(.*a){12}";
      assert.equal(test(value), expected, pattern);
      const ms = medianDecisionMs(() => test(value));
      assert.ok(ms < 1, `${pattern} on ${value.length} characters took ${ms.toFixed(3)} ms a decision`);
    }
    const files = pathMatch({ pathRegex: "/files/(\\w+/?)*\\.pdf" });
    const crafted = `/files/${"a".repeat(KB10)}!`;
    assert.equal(files("/files/a/b/c.pdf"), true);
    assert.equal(files(crafted), false);
    const ms = medianDecisionMs(() => files(crafted));
    assert.ok(ms < 1, `the path regex took ${ms.toFixed(3)} ms a decision`);
  });

  it("patterns whose DFA grows without end (`.*a.{20}b`) decide crafted 10 KB paths in a few ms each", () => {
    // Fixed pseudo-random mixes of 'a' and 'b', a new one for every decision: each explores DFA states
    // the ones before did not, which is what fills a lazy DFA (the same path twice would find its states cached).
    let seed = 20261207;
    const random = (): number => {
      // mulberry32: a seeded generator whose bits do not repeat within a path (an LCG's low bits would).
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const crafted = (): string => {
      let path = "/";
      for (let i = 0; i < KB10; i++) path += random() < 0.5 ? "a" : "b";
      return path;
    };
    for (const pattern of ["/.*a.{20}b", "/[ab]*a[ab]{20}x", "/(?:.*a.{20})x"]) {
      const match = pathMatch({ pathRegex: pattern });
      const times: number[] = [];
      for (let i = 0; i < 9; i++) {
        const path = crafted();
        const start = performance.now();
        match(path);
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      const median = times[4] ?? Infinity;
      // re2js's own 8 MB DFA took 12 to 190 ms a path here; 64 KB takes 3 to 5; the bound leaves room for a loaded machine.
      assert.ok(median < 15, `${pattern}: ${median.toFixed(1)} ms a crafted path (median of 9)`);
    }
  });

  it("a filter's `matches` (a search, as go-bexpr's) decides a catastrophic pattern on 10 KB in under a millisecond", () => {
    const filter = compileFilter('Service.Meta.x matches "(a+)+$"');
    const value = { Service: { Meta: { x: `${"a".repeat(KB10)}!` } } };
    assert.equal(filter(value), false);
    assert.equal(filter({ Service: { Meta: { x: "xx-aaa" } } }), true, "some part of the value matches");
    const ms = medianDecisionMs(() => filter(value));
    assert.ok(ms < 1, `the filter took ${ms.toFixed(3)} ms a decision`);
  });
});

describe("regexes mean what they mean in Go's regexp (Consul) and RE2 (Envoy)", () => {
  it("ASCII classes: [[:digit:]], [[:^alpha:]], [^[:digit:]]", () => {
    const digits = headerRegex("[[:digit:]]+");
    assert.equal(digits("2026"), true);
    assert.equal(digits("d]"), false);
    assert.equal(digits("٣"), false, "[[:digit:]] is [0-9], ASCII only");
    assert.equal(headerRegex("[[:^alpha:]]+")("123-"), true);
    assert.equal(headerRegex("[[:^alpha:]]+")("abc"), false);
    assert.equal(headerRegex("[^[:digit:]]+")("abc"), true);
    assert.equal(headerRegex("[^[:digit:]]+")("a1"), false);
  });

  it("\\Q…\\E is literal text, even with punctuation", () => {
    const literal = headerRegex("\\Q/a.b*\\E[0-9]");
    assert.equal(literal("/a.b*7"), true);
    assert.equal(literal("/axbb7"), false);
  });

  it("(?i) and (?i:…) set case-insensitivity; the route's caseInsensitive flag does the same for the path", () => {
    assert.equal(pathMatch({ pathRegex: "(?i)/orders/[a-z]+" })("/ORDERS/Ab"), true);
    const partly = headerRegex("(?i:ab)c");
    assert.equal(partly("ABc"), true);
    assert.equal(partly("ABC"), false);
    assert.equal(pathMatch({ pathRegex: "/orders/[a-z]+", caseInsensitive: true })("/Orders/AB"), true);
    assert.equal(pathMatch({ pathRegex: "/orders/[a-z]+" })("/Orders/AB"), false);
  });

  it("Unicode classes: \\p{L}, \\pN, \\p{Greek}, \\PL", () => {
    assert.equal(headerRegex("\\p{L}+")("héllo"), true);
    assert.equal(headerRegex("\\p{L}+")("p{L}"), false);
    assert.equal(headerRegex("\\pN+")("٣4"), true);
    assert.equal(headerRegex("\\p{Greek}+")("αβγ"), true);
    assert.equal(headerRegex("\\p{Greek}+")("abc"), false);
    assert.equal(headerRegex("\\PL")("1"), true);
    assert.equal(headerRegex("\\PL")("a"), false);
  });

  it("\\z is the end of the text; the whole value must match", () => {
    assert.equal(headerRegex("a\\z")("a"), true);
    assert.equal(headerRegex("a\\z")("az"), false);
    assert.equal(headerRegex("[0-9]+")("12a"), false, "a full match, as Envoy's safe_regex");
  });

  it("Perl classes are ASCII-only; \\s is [\\t\\n\\f\\r ]", () => {
    assert.equal(headerRegex("a\\sb")("a b"), true);
    assert.equal(headerRegex("a\\sb")("a\vb"), false, "no vertical tab");
    assert.equal(headerRegex("a\\sb")("a\u00a0b"), false, "no no-break space");
    assert.equal(headerRegex("\\w+")("é"), false);
  });

  it("named groups: (?P<name>…) and (?<name>…); a name twice is rejected", () => {
    const named = headerRegex("(?P<id>[0-9]+)-(?<name>[a-z]+)");
    assert.equal(named("42-ann"), true);
    assert.equal(named("42-"), false);
    assert.throws(() => headerRegex("(?P<n>a)(?P<n>b)"), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /duplicate capture group name/.test(err.message));
  });

  it("rejects what RE2 rejects at apply time, naming the field and giving RE2's reason", () => {
    for (const [pattern, reason] of [
      ["/a(?=b)", "invalid or unsupported Perl syntax: `(?=`"],
      ["/a(?!b)", "invalid or unsupported Perl syntax: `(?!`"],
      ["/(?<=a)b", "invalid named capture: `(?<=a)b`"], // Go reads `(?<` as a named group
      ["/(a)\\1", "invalid escape sequence: `\\1`"],
      ["/a++", "invalid nested repetition operator: `++`"],
      ["/\\C", "invalid escape sequence: `\\C`"],
      ["/x{1001}", "invalid repeat count: `{1001}`"],
      ["/(?#note)", "invalid or unsupported Perl syntax: `(?#`"],
      ["/orders/(", "missing closing ): `/orders/(`"],
    ] as const) {
      const config = { router: { routes: [{ match: { pathRegex: pattern } }] } };
      assert.throws(
        () => validateServiceConfig(config, "web"),
        (err: unknown) => {
          assert.ok(err instanceof MeshError && err.code === "ERR_INVALID_CONFIG", `${pattern}: ${String(err)}`);
          assert.equal(err.details.field, "router.routes[0].match.pathRegex");
          assert.ok(err.message.includes(reason), `${pattern}: ${err.message}`);
          return true;
        },
      );
    }
    assert.throws(
      () => validateServiceConfig({ router: { routes: [{ match: { headers: [{ name: "x", regex: "a(?=b)" }] } }] } }, "web"),
      (err: unknown) => err instanceof MeshError && err.code === "ERR_INVALID_CONFIG" && err.details.field === "router.routes[0].match.headers[0].regex",
    );
    assert.throws(() => compileFilter('Service.Meta.x matches "a(?=b)"'), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /unsupported Perl syntax/.test(err.message));
  });

  it("a pattern's literal start (checked before the automaton) changes nothing: alternations, case folding, characters beyond the BMP", () => {
    assert.equal(pathMatch({ pathRegex: "/a|/b" })("/b"), true);
    assert.equal(pathMatch({ pathRegex: "/api/v1/x|/api/v2/y" })("/api/v2/y"), true);
    assert.equal(pathMatch({ pathRegex: "/api/v1/x|/api/v2/y" })("/api/v1/y"), false);
    // RE2 folds case with Unicode simple folding: k, K and the Kelvin sign; s, S and the long s.
    assert.equal(pathMatch({ pathRegex: "/orders/k", caseInsensitive: true })("/ORDERS/\u212A"), true);
    assert.equal(pathMatch({ pathRegex: "(?i)/s" })("/\u017F"), true);
    assert.equal(pathMatch({ pathRegex: "/s" })("/S"), false);
    assert.equal(headerRegex("x.")("x\u{1D49C}"), true, "one character, though two UTF-16 units");
    assert.equal(headerRegex("x..")("x\u{1D49C}"), false);
    assert.equal(headerRegex("\\p{Lu}")("\u{1D49C}"), true);
  });

  it("a filter's `matches` uses RE2 too: [[:digit:]] is a digit", () => {
    assert.equal(compileFilter('Service.Meta.zone matches "[[:digit:]]"')({ Service: { Meta: { zone: "eu-1" } } }), true);
    assert.equal(compileFilter('Service.Meta.zone matches "[[:digit:]]"')({ Service: { Meta: { zone: "eu" } } }), false);
  });
});

const caller = (service: string) => ({
  ...(parseSpiffeId(`spiffe://td.consul/ns/default/dc/dc1/svc/${service}`) ?? assert.fail("a SPIFFE ID")),
  spiffeId: `spiffe://td.consul/ns/default/dc/dc1/svc/${service}`,
  serialNumber: "01",
});

describe("intention regexes", () => {
  const authorizerOf = (sources: readonly IntentionSource[], cacheMs = 60_000) =>
    consulAuthorizer({ intentions: () => Promise.resolve(sources), authorize: () => Promise.resolve({ allowed: false, reason: "L4" }) }, "orders", { cacheMs, local: () => ({ trustDomain: "td.consul", namespace: "default", partition: "default" }) });

  it("are compiled once when the intentions are loaded, never per request", async () => {
    let reads = 0;
    const http = {};
    Object.defineProperty(http, "PathRegex", {
      enumerable: true,
      get: () => {
        reads++;
        return "/v1/[a-z]+";
      },
    });
    const authorize = authorizerOf([{ Name: "web", Permissions: [{ Action: "allow", HTTP: http }] }]);
    for (let i = 0; i < 50; i++) assert.equal((await authorize(caller("web"), { method: "GET", path: `/v1/orders?page=${i}`, headers: {} })).allowed, true);
    assert.equal((await authorize(caller("web"), { method: "GET", path: "/v2/orders", headers: {} })).allowed, false);
    assert.ok(reads <= 2, `the PathRegex was read ${reads} times for 51 requests`);
  });

  it("use RE2: (?i) in a header Regex, a full match of the path", async () => {
    const authorize = authorizerOf([
      { Name: "web", Permissions: [{ Action: "allow", HTTP: { PathRegex: "/v1/[[:digit:]]+", Header: [{ Name: "X-Role", Regex: "(?i)admin" }] } }] },
    ]);
    const call = (path: string, role: string) => authorize(caller("web"), { method: "GET", path, headers: { "x-role": role } });
    assert.equal((await call("/v1/42", "ADMIN")).allowed, true);
    assert.equal((await call("/v1/42/x", "ADMIN")).allowed, false, "the whole path must match");
    assert.equal((await call("/v1/42", "user")).allowed, false);
  });

  it("a permission whose regex RE2 rejects denies the requests that reach it, with the reason, and never throws", async () => {
    const authorize = authorizerOf([
      {
        Name: "web",
        Permissions: [
          { Action: "allow", HTTP: { PathPrefix: "/public/" } },
          { Action: "deny", HTTP: { PathRegex: "/admin/(?!health)" } },
          { Action: "allow", HTTP: { Header: [{ Name: "x-v", Regex: "a++" }] } },
          { Action: "allow", HTTP: { PathPrefix: "/" } },
        ],
      },
    ]);
    const call = (path: string) => authorize(caller("web"), { method: "GET", path, headers: { "x-v": "aa" } });
    assert.equal((await call("/public/menu")).allowed, true, "an earlier permission still decides");
    const denied = await call("/admin/users");
    assert.equal(denied.allowed, false);
    assert.match(denied.reason, /permission 1 cannot be evaluated, so it denies: .*Sources\[0\]\.Permissions\[1\]\.HTTP\.PathRegex.*invalid or unsupported Perl syntax/);
    assert.equal((await call("/anything")).allowed, false, "what the broken permission might have denied is denied");
  });

  it("a malformed permission (not as Consul writes one) denies what reaches it and never throws, for any caller", async () => {
    const authorize = authorizerOf([
      { Name: "good", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] },
      { Name: "bad", Permissions: [{ Action: "allow", HTTP: { Methods: "DELETE" as unknown as string[] } }] },
      { Name: "worse", Permissions: "allow" as unknown as [] },
    ]);
    assert.equal((await authorize(caller("good"), { method: "GET", path: "/", headers: {} })).allowed, true, "another source's malformed permission changes nothing");
    const bad = await authorize(caller("bad"), { method: "DELETE", path: "/", headers: {} });
    assert.equal(bad.allowed, false);
    assert.match(bad.reason, /cannot be evaluated, so it denies: .*Sources\[1\]\.Permissions\[0\]\.HTTP.*malformed/);
    assert.equal((await authorize(caller("worse"), { method: "GET", path: "/", headers: {} })).allowed, false);
  });
});

describe("a crafted 10 KB path against catastrophic regexes, on real servers", () => {
  let fake: FakeConsul;
  let consul: ConsulRegistry;
  const meshes: Mesh[] = [];
  const backends: TlsBackend[] = [];
  before(async () => {
    fake = await FakeConsul.start();
    consul = new ConsulRegistry({ url: fake.url, initialBackoffMs: 20 });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(backends.map((b) => b.close()));
    await fake.close();
  });

  it("the intention and the route decide quickly: 403 from the deny permission, the route not taken", async () => {
    const catastrophic = "/files/(\\w+/?)*\\.pdf";
    // Consul refuses L7 intentions on a service whose protocol is not HTTP-like.
    const defaults = await request(`${fake.url}/v1/config`, { method: "PUT", body: JSON.stringify({ Kind: "service-defaults", Name: "orders", Protocol: "http" }) });
    assert.equal(await defaults.body.text(), "true");
    const put = await request(`${fake.url}/v1/config`, {
      method: "PUT",
      body: JSON.stringify({
        Kind: "service-intentions",
        Name: "orders",
        Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathRegex: catastrophic } }, { Action: "deny", HTTP: { PathPrefix: "/" } }] }],
      }),
    });
    assert.equal(put.statusCode, 200, await put.body.text());

    const server = createMesh({ registry: consul, service: "orders", tls: { identity: consul.connectIdentity("orders") } });
    meshes.push(server);
    const denied: string[] = [];
    server.on("inbound_denied", (e) => denied.push(e.reason));
    const inbound = server.inbound({ authorize: "consul", cacheMs: 0 });
    const backend = await TlsBackend.startWith("orders-0", await inbound.serverOptions(), inbound);
    inbound.attach(backend.server);
    backends.push(backend);

    const registry = new MockRegistry({ orders: [backend.endpoint()] });
    registry.setConfig("orders", { router: { routes: [{ match: { pathRegex: catastrophic }, destination: { responseHeaders: { set: { "x-route": "pdf" } } } }] } });
    const web = createMesh({ registry, service: "web", tls: { identity: consul.connectIdentity("web") }, resilience: { retries: false } });
    meshes.push(web);
    const orders = web.client("orders");

    const pdf = await orders.request({ path: "/files/a/b/report.pdf" });
    assert.equal(pdf.statusCode, 200, await pdf.body.text());
    assert.equal(pdf.headers["x-route"], "pdf", "the route's regex matched");

    const crafted = `/files/${"a".repeat(KB10)}!`;
    const start = performance.now();
    const res = await orders.request({ path: crafted });
    const text = await res.body.text();
    const ms = performance.now() - start;
    assert.equal(res.statusCode, 403, text);
    assert.match(denied.at(-1) ?? "", /permission 1 \(deny\)/);
    assert.equal(res.headers["x-route"], undefined, "the route's regex did not match");
    assert.ok(ms < 500, `the crafted request took ${ms.toFixed(1)} ms`);
  });
});
