import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMesh, type RouteMatch } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { compileMatch } from "../src/config/compile-match.ts";
import { RequestView } from "../src/routing/request-view.ts";

const matches = (match: RouteMatch, method: string, path: string, headers: Record<string, string> = {}): boolean => compileMatch(match)(new RequestView({ method, path, headers }));

describe("route matching, with Consul's (Envoy's) semantics", () => {
  it("paths: exact, plain string prefix, whole-path regex; case-insensitive when asked; the query is not part of the path", () => {
    assert.equal(matches({ pathExact: "/a" }, "GET", "/a?x=1"), true);
    assert.equal(matches({ pathExact: "/a" }, "GET", "/a/"), false);
    assert.equal(matches({ pathExact: "/Admin", caseInsensitive: true }, "GET", "/aDMIN"), true);
    assert.equal(matches({ pathPrefix: "/admin" }, "GET", "/administrator"), true, "a plain prefix, not a segment match");
    assert.equal(matches({ pathPrefix: "/admin" }, "GET", "/Admin/x"), false);
    assert.equal(matches({ pathPrefix: "/admin", caseInsensitive: true }, "GET", "/ADMIN/x"), true);
    assert.equal(matches({ pathRegex: "/orders/[0-9]+" }, "GET", "/orders/42"), true);
    assert.equal(matches({ pathRegex: "/orders/[0-9]+" }, "GET", "/orders/42/items"), false, "the regex must match the whole path");
    assert.equal(matches({ pathRegex: "/users/(?P<id>[a-z]+)" }, "GET", "/users/ann"), true, "RE2 named groups");
    assert.equal(matches({ pathRegex: "/USERS/.*", caseInsensitive: true }, "GET", "/users/x"), true);
  });

  it("headers: present, exact, prefix, suffix, regex, and invert (which matches when the header is absent)", () => {
    const h = { "X-Env": "staging-eu" };
    assert.equal(matches({ headers: [{ name: "x-env", present: true }] }, "GET", "/", h), true, "names are case-insensitive");
    assert.equal(matches({ headers: [{ name: "x-env" }] }, "GET", "/", {}), false, "no condition means present");
    assert.equal(matches({ headers: [{ name: "x-env", exact: "staging" }] }, "GET", "/", h), false);
    assert.equal(matches({ headers: [{ name: "x-env", prefix: "staging" }] }, "GET", "/", h), true);
    assert.equal(matches({ headers: [{ name: "x-env", suffix: "-eu" }] }, "GET", "/", h), true);
    assert.equal(matches({ headers: [{ name: "x-env", regex: "staging-(eu|us)" }] }, "GET", "/", h), true);
    assert.equal(matches({ headers: [{ name: "x-env", regex: "staging" }] }, "GET", "/", h), false, "the regex must match the whole value");
    assert.equal(matches({ headers: [{ name: "x-debug", exact: "1", invert: true }] }, "GET", "/", h), true, "absent: inverted exact holds");
    assert.equal(matches({ headers: [{ name: "x-env", present: true, invert: true }] }, "GET", "/", h), false);
  });

  it("query parameters, methods, and every condition together", () => {
    assert.equal(matches({ query: [{ name: "debug", present: true }] }, "GET", "/?debug"), true);
    assert.equal(matches({ query: [{ name: "v", exact: "2" }] }, "GET", "/?v=2&w=3"), true);
    assert.equal(matches({ query: [{ name: "v", regex: "[0-9]+" }] }, "GET", "/?v=2a"), false);
    assert.equal(matches({ methods: ["POST", "PUT"] }, "post", "/"), true, "methods compare upper case");
    assert.equal(matches({ methods: ["POST"] }, "GET", "/"), false);
    const all: RouteMatch = { pathPrefix: "/api", methods: ["GET"], headers: [{ name: "x-a", exact: "1" }], query: [{ name: "q", present: true }] };
    assert.equal(matches(all, "GET", "/api/x?q=1", { "x-a": "1" }), true);
    assert.equal(matches(all, "GET", "/api/x", { "x-a": "1" }), false);
  });
});

describe("subsets with OnlyPassing", () => {
  it("leave warning instances out, where a subset without it keeps them", async () => {
    const registry = new MockRegistry({
      web: [
        { id: "a", address: "127.0.0.1", port: 1, health: "passing" },
        { id: "b", address: "127.0.0.1", port: 2, health: "warning" },
      ],
    });
    registry.setConfig("web", { resolver: { subsets: { strict: { onlyPassing: true }, lax: {} }, defaultSubset: "strict" } });
    const mesh = createMesh({ registry });
    assert.deepEqual((await mesh.explain("web")).candidates.map((c) => c.id), ["a"]);
    registry.setConfig("web", { resolver: { subsets: { strict: { onlyPassing: true }, lax: {} }, defaultSubset: "lax" } });
    assert.deepEqual((await mesh.explain("web")).candidates.map((c) => c.id), ["a", "b"]);
    await mesh.close();
  });
});
