import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createMesh, isMeshError, meshErrorOf, type Mesh, type ConfigRejectedEvent } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { Backend } from "./helpers/backend.ts";

/**
 * Property: every config the mesh accepts (from `setConfig` or Consul entries) runs. For every accepted
 * config, every request gets a response or a typed MeshError (never undici's argument error, never
 * another error); for every refused config, the config before it keeps serving.
 *
 * `npm test` runs it with a fixed seed and 100 runs; `npm run fuzz:config` runs 5,000 with a new seed
 * (`FUZZ_RUNS`, `FUZZ_SEED` override both).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
/** A fixed seed in `npm test`; `FUZZ_SEED=random` for a new one (fast-check prints it with any counterexample). */
const SEED = process.env.FUZZ_SEED === "random" ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED ?? 20261207);

/** Strings that probe what undici and grpc-js refuse: control characters, Latin-1, beyond Latin-1, spaces, CR/LF. */
const nasty = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("v1", "yes", "a-b", "1") },
  fc.constantFrom("", "x", "ok", "v1", "a b", "tab\there", "cr\rlf\n", "nul\0", "del\x7f", "latin-\u00e9", "wide-\u0100", "emoji-\u{1F600}", "  padded  ", "q?x=1", "#frag", "%2F"),
  fc.string({ maxLength: 8, unit: "binary" }),
);
const headerNames = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("x-route", "x-team", "X-Mixed") },
  fc.constantFrom("x-route", "X-Mixed", "x_under", "x.dot", "host", "content-length", "transfer-encoding", "connection", "upgrade", "expect", "keep-alive", "te", "x-data-bin", "bad name", "x\u00e9", "", ":path", "x!bang"),
  fc.string({ minLength: 1, maxLength: 6 }),
);
const paths = fc.oneof(fc.constantFrom("/", "/api", "/api/", "/v1/orders", "/files/a.pdf", "api", "", "/with space", "/\u00e9", "/\u0100"), fc.string({ maxLength: 6 }).map((s) => `/${s}`));
const rewrites = fc.oneof({ weight: 3, arbitrary: paths }, nasty);
const regexes = fc.oneof(fc.constantFrom("/api/.*", "/v[0-9]+/.*", "(?i)/API/.*", "[[:digit:]]+", "\\Q/a.b\\E", "/files/(\\w+/?)*\\.pdf", "(", "a(?=b)", "\\p{L}+", ".*"), nasty);

const headerChanges = fc.record(
  {
    set: fc.dictionary(headerNames, nasty, { maxKeys: 2 }),
    add: fc.dictionary(headerNames, nasty, { maxKeys: 2 }),
    remove: fc.array(headerNames, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

const match = fc.record(
  {
    pathPrefix: paths,
    pathExact: paths,
    pathRegex: regexes,
    caseInsensitive: fc.boolean(),
    methods: fc.subarray(["GET", "POST", "PUT", "DELETE"], { minLength: 1 }),
    headers: fc.array(fc.record({ name: headerNames, exact: nasty }, { requiredKeys: ["name"] }), { maxLength: 1 }),
    query: fc.array(fc.record({ name: fc.constantFrom("q", "x"), regex: regexes }, { requiredKeys: ["name"] }), { maxLength: 1 }),
  },
  { requiredKeys: [] },
);

const destination = fc.record(
  {
    service: fc.constantFrom("web", "api"),
    subset: fc.constantFrom("v1", "v2", "nope"),
    prefixRewrite: rewrites,
    numRetries: fc.integer({ min: 0, max: 2 }),
    requestTimeoutMs: fc.integer({ min: 0, max: 5000 }),
    retryOnStatusCodes: fc.constant([503]),
    requestHeaders: headerChanges,
    responseHeaders: headerChanges,
  },
  { requiredKeys: [] },
);

const route = fc.record({ match, destination }, { requiredKeys: [] });

const split = fc.record(
  { weight: fc.constantFrom(0, 50, 100), service: fc.constantFrom("web", "api"), subset: fc.constantFrom("v1", "v2"), requestHeaders: headerChanges, responseHeaders: headerChanges },
  { requiredKeys: ["weight"] },
);

const resolver = fc.record(
  {
    subsets: fc.constant({ v1: { filter: 'Service.Meta.version == "v1"' }, v2: { filter: 'Service.Meta.version == "v2"' } }),
    defaultSubset: fc.constantFrom("v1", "v2", "v3"),
  },
  { requiredKeys: ["subsets"] },
);

/** A service config as `setConfig` takes it: parts may be wrong on purpose. */
const serviceConfig = fc.record(
  {
    router: fc.record({ routes: fc.array(route, { maxLength: 3 }) }),
    splitter: fc.record({ splits: fc.array(split, { minLength: 1, maxLength: 2 }) }),
    resolver,
  },
  { requiredKeys: [] },
);

/** A Consul service-router entry, as `consul config write` takes it. */
const consulRouter = fc.record({
  Kind: fc.constant("service-router"),
  Name: fc.constant("web"),
  Routes: fc.array(
    fc.record(
      {
        Match: fc.record({ HTTP: fc.record({ PathPrefix: paths, Header: fc.array(fc.record({ Name: headerNames, Exact: nasty }), { maxLength: 1 }) }, { requiredKeys: [] }) }),
        Destination: fc.record(
          {
            PrefixRewrite: rewrites,
            RequestHeaders: fc.record({ Set: fc.dictionary(headerNames, nasty, { maxKeys: 2 }), Add: fc.dictionary(headerNames, nasty, { maxKeys: 1 }) }, { requiredKeys: [] }),
            ResponseHeaders: fc.record({ Set: fc.dictionary(headerNames, nasty, { maxKeys: 1 }) }, { requiredKeys: [] }),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 2 },
  ),
});

const request = fc.record({
  method: fc.constantFrom("GET", "POST", "DELETE"),
  path: fc.oneof(fc.constantFrom("/", "/api/x", "/API/x", "/v1/orders", "/files/a.pdf", "/123", "/a.b", "/api/x?q=1", "/v2/x?x=%2F"), fc.webPath().filter((p) => p.startsWith("/") && !p.startsWith("//"))),
  header: fc.constantFrom(undefined, "x-route", "X-Mixed"),
});

/** What a request ended with: a response, or the MeshError it failed with. Anything else (an argument error included) fails the property. */
function outcome(err: unknown, via: string): string {
  const mesh = meshErrorOf(err);
  // The requests are valid: an argument error can only come from what the config made of them (undici's refusal, wrapped).
  if (mesh !== undefined && mesh.code !== "ERR_INVALID_ARGUMENT") return mesh.code;
  throw new assert.AssertionError({ message: `${via} failed with an argument error or an error that is not a MeshError: ${String(err)} (cause: ${String((err as { cause?: unknown }).cause)})`, actual: err });
}

describe("every accepted config runs (fast-check)", () => {
  let backend: Backend;
  let registry: MockRegistry;
  let mesh: Mesh;
  const rejected: ConfigRejectedEvent[] = [];
  let applied = 0;

  before(async () => {
    backend = await Backend.start("fuzz");
    const endpoints = (version: string, i: number) => ({ id: `${version}-${i}`, address: "127.0.0.1", port: backend.port, meta: { version } });
    registry = new MockRegistry({ web: [endpoints("v1", 1), endpoints("v2", 2)], api: [endpoints("v1", 3), endpoints("v2", 4)] });
    mesh = createMesh({ registry });
    mesh.on("config_rejected", (e) => rejected.push(e));
    mesh.on("config_applied", () => applied++);
    // Watched from the start: a config reaches the mesh for the services it watches.
    mesh.client("web");
    mesh.client("api");
  });
  after(async () => {
    await mesh.close();
    await backend.close();
  });

  /** Applies a known config that marks requests, and checks it serves: what a refused config must leave in place. */
  function applyMarker(run: number): void {
    registry.setConfig("web", { router: { routes: [{ match: { pathPrefix: "/" }, destination: { requestHeaders: { set: { "x-marker": String(run) } } } }] } });
    registry.setConfig("api", {});
  }

  async function send(r: { method: string; path: string; header: string | undefined }): Promise<void> {
    const headers = r.header === undefined ? undefined : { [r.header]: "v" };
    const body = r.method === "POST" ? "payload" : undefined;
    try {
      const res = await mesh.client("web").request({ method: r.method, path: r.path, ...(headers === undefined ? {} : { headers }), ...(body === undefined ? {} : { body }) });
      await res.body.dump();
    } catch (err) {
      outcome(err, "request()");
    }
    try {
      const res = await mesh.client("web").fetch(r.path, { method: r.method, ...(headers === undefined ? {} : { headers }), ...(body === undefined ? {} : { body }) });
      await res.arrayBuffer();
    } catch (err) {
      outcome(err, "fetch()");
    }
  }

  it("a request through any accepted config ends in a response or a MeshError; a refused config leaves the last good one serving", async () => {
    let run = 0;
    let refusedRuns = 0;
    let acceptedRuns = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 3, arbitrary: serviceConfig.map((c) => ({ kind: "config" as const, c })) }, { weight: 1, arbitrary: consulRouter.map((c) => ({ kind: "consul" as const, c })) }), fc.array(request, { minLength: 1, maxLength: 3 }), async (input, requests) => {
        run++;
        applyMarker(run);
        const before = { rejected: rejected.length, applied };
        let refused = false;
        if (input.kind === "config") {
          registry.setConfig("web", input.c);
          refused = rejected.length > before.rejected;
          if (!refused) assert.equal(applied, before.applied + 1, "a config is either applied or rejected");
        } else {
          try {
            registry.applyConsulEntries(input.c);
          } catch (err) {
            assert.ok(isMeshError(err, "ERR_INVALID_CONFIG"), `a refused Consul entry is ERR_INVALID_CONFIG: ${String(err)}`);
            refused = true;
          }
          refused ||= rejected.length > before.rejected;
        }
        if (refused) {
          refusedRuns++;
          for (const e of rejected.slice(before.rejected)) assert.ok(isMeshError(e.error, "ERR_INVALID_CONFIG") || e.error.code === "ERR_INVALID_CONFIG");
          // The marker config still serves.
          const seen = backend.seen.length;
          const res = await mesh.client("web").request({ path: "/marker" });
          await res.body.dump();
          assert.equal(res.statusCode, 200);
          assert.equal(backend.seen[seen]?.headers["x-marker"], String(run), "the last good config keeps serving");
          return;
        }
        acceptedRuns++;
        for (const r of requests) await send(r);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // Both sides of the property were exercised.
    assert.ok(refusedRuns > 0 && acceptedRuns > 0, `refused ${refusedRuns}, accepted ${acceptedRuns}`);
  });

  it("runs the config as it was when applied: changing the caller's object afterwards changes nothing", async () => {
    const config = { router: { routes: [{ match: { pathPrefix: "/a" }, destination: { prefixRewrite: "/b" } }] } };
    registry.setConfig("web", config);
    const seen = backend.seen.length;
    (config.router.routes[0]!.destination).prefixRewrite = "b c\u0100"; // never validated
    const res = await mesh.client("web").request({ path: "/a/x" });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.equal(backend.seen[seen]?.url, "/b/x");
  });
});
