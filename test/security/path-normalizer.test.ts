import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalizeTarget, removeDotSegments } from "../../src/security/path-normalization.ts";

/** RFC 3986 section 5.2.3 "Merge Paths" for the base path `/b/c/d;p` (base URI `http://a/b/c/d;p?q`). */
const merge = (reference: string): string => (reference.startsWith("/") ? reference : `/b/c/${reference}`);

/** `removeDotSegments(merge(ref))` and the path of the resolved URI, from RFC 3986 sections 5.4.1 and 5.4.2 (path-only references). */
const RFC_3986_EXAMPLES: readonly (readonly [reference: string, path: string])[] = [
  // 5.4.1 Normal Examples
  ["g", "/b/c/g"],
  ["./g", "/b/c/g"],
  ["g/", "/b/c/g/"],
  ["/g", "/g"],
  [";x", "/b/c/;x"],
  ["g;x", "/b/c/g;x"],
  [".", "/b/c/"],
  ["./", "/b/c/"],
  ["..", "/b/"],
  ["../", "/b/"],
  ["../g", "/b/g"],
  ["../..", "/"],
  ["../../", "/"],
  ["../../g", "/g"],
  // 5.4.2 Abnormal Examples
  ["../../../g", "/g"],
  ["../../../../g", "/g"],
  ["/./g", "/g"],
  ["/../g", "/g"],
  ["g.", "/b/c/g."],
  [".g", "/b/c/.g"],
  ["g..", "/b/c/g.."],
  ["..g", "/b/c/..g"],
  ["./../g", "/b/g"],
  ["./g/.", "/b/c/g/"],
  ["g/./h", "/b/c/g/h"],
  ["g/../h", "/b/c/h"],
  ["g;x=1/./y", "/b/c/g;x=1/y"],
  ["g;x=1/../y", "/b/c/y"],
];

describe("the request-path normalizer", () => {
  it("removes dot segments as RFC 3986 resolves its own examples (sections 5.4.1 and 5.4.2)", () => {
    for (const [reference, path] of RFC_3986_EXAMPLES) {
      assert.equal(removeDotSegments(merge(reference)), path, reference);
      const target = normalizeTarget(merge(reference), "keep");
      assert.deepEqual(target.ok && target.path, path, `normalizeTarget(${merge(reference)})`);
    }
  });

  it("follows the RFC's walk-through of remove_dot_segments (section 5.2.4), relative paths included", () => {
    assert.equal(removeDotSegments("/a/b/c/./../../g"), "/a/g");
    assert.equal(removeDotSegments("mid/content=5/../6"), "mid/6");
  });

  it("keeps the query as received: g?y/./x and g?y/../x (RFC 3986 5.4.2)", () => {
    assert.deepEqual(normalizeTarget("/b/c/g?y/./x", "keep"), { ok: true, path: "/b/c/g", query: "?y/./x", changed: false });
    assert.deepEqual(normalizeTarget("/b/c/g?y/../x", "keep"), { ok: true, path: "/b/c/g", query: "?y/../x", changed: false });
  });

  it("decodes escaped unreserved characters (and escaped dots before dot segments go), upper-cases other escapes", () => {
    const path = (t: string): string | false => {
      const n = normalizeTarget(t, "keep");
      return n.ok && n.path;
    };
    assert.equal(path("/%41%7a%30%2D%2e%5F%7e"), "/Az0-._~");
    assert.equal(path("/a/%2E%2e/b"), "/b");
    assert.equal(path("/a%20b%3a%c3%a9"), "/a%20b%3A%C3%A9");
    assert.equal(path("/a%2fb"), "/a%2Fb");
    assert.equal(path("//a///b//"), "/a/b/");
    assert.equal(path("/a\\b\\..\\c"), "/a/c");
    assert.equal(path("/..//evil.example/x"), "/evil.example/x", "never // at the start: URL parsers read it as a host");
  });

  it("refuses dot segments carrying ;parameters and dot segments hidden by escaped slashes or semicolons", () => {
    for (const target of ["/..;/a", "/a/.;/b", "/a/..;x=1", "/a/%2E%2E;/b", "/a/..%3B/b", "/a/..%2F", "/a/x%2F..%2Fb", "/a/..%5Cb"]) {
      assert.equal(normalizeTarget(target, "keep").ok, false, target);
    }
    for (const target of ["/a;x/b", "/a/...;x", "/a/.x;y", "/a/b%2Fc"]) assert.equal(normalizeTarget(target, "keep").ok, true, target);
  });

  it("is idempotent: a normalized path normalizes to itself (seeded random paths)", () => {
    const alphabet = ["/", "/", ".", ".", "a", "b", "%2e", "%2F", "%5c", "%41", "\\", ";", "~", "%zz"];
    let seed = 42;
    const next = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    let checked = 0;
    for (let i = 0; i < 5000; i++) {
      let raw = "/";
      const length = 1 + Math.floor(next() * 12);
      for (let j = 0; j < length; j++) raw += alphabet[Math.floor(next() * alphabet.length)] ?? "";
      for (const policy of ["keep", "decode"] as const) {
        const once = normalizeTarget(raw, policy);
        if (!once.ok) continue;
        checked++;
        assert.deepEqual(normalizeTarget(once.path, policy), { ok: true, path: once.path, query: "", changed: false }, `${raw} -> ${once.path}`);
        assert.ok(!once.path.includes("//") && !once.path.split("/").some((s) => s === "." || s === ".."), `${raw} -> ${once.path}`);
      }
    }
    assert.ok(checked > 1000, `only ${checked} paths were accepted`);
  });
});
