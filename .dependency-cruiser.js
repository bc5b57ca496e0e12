// @ts-check
// The import rules of src/, checked by `npm run lint` (dependency-cruiser). docs/architecture.md
// explains them for people; this file is what holds them. A violation prints as
//   error <rule>: <importing file> → <imported file>
// followed by the rule's comment, which says what is allowed instead.

/**
 * The floors of src/, bottom first. A file may import files of its own floor and of the floors below
 * it, never above: so a lower floor never learns about a higher one, and each floor can be read, tested
 * and replaced with only what is under it. Every file of src/ sits on exactly one floor (a new folder
 * needs a line here).
 *
 * @type {readonly { readonly name: string; readonly path: string; readonly holds: string }[]}
 */
const FLOORS = [
  { name: "core", path: "^src/core/", holds: "errors, clock, random, headers, validation, the incoming deadline: imports nothing else in src" },
  { name: "endpoint", path: "^src/endpoint/", holds: "Endpoint, EndpointSet, snapshot diffs" },
  // Above endpoint, not beside it: a picker picks among endpoints (picker.ts names Endpoint).
  { name: "balancer", path: "^src/balancer/", holds: "picker plugins, load metrics, LoadBalancerConfig, the split sequence" },
  { name: "config", path: "^src/config/", holds: "the one config compiler and its input types (ServiceConfig, ResilienceOptions): route tables, call policies" },
  // Below registry: the Consul registry is an identity source (Connect CA) and an authorizer.
  { name: "security", path: "^src/security/", holds: "identities, SPIFFE checks, TLS options, authorization" },
  { name: "registry", path: "^src/registry/", holds: "the Registry interface, static and Consul registries" },
  // Below upstream and everything that calls: they report to it; it reads them only through
  // interfaces it owns (CallTarget, the event and snapshot types), never their classes.
  { name: "telemetry", path: "^src/telemetry/", holds: "spans, metrics, diagnostics_channel, the mesh's events" },
  { name: "upstream", path: "^src/upstream/", holds: "per-service state, endpoint pool, its guard (budget, breaker, outlier detection), its read-only view" },
  { name: "routing", path: "^src/routing/", holds: "route decisions, failover, endpoint selection, explain (over the route tables config compiles)" },
  { name: "resilience", path: "^src/resilience/", holds: "the call engine: deadlines, retries, hedging; it runs the upstream's budget, breaker and outlier detection" },
  // client/service-client.ts is the HTTP client adapter (request, fetch) onto the engine (transitional).
  { name: "http", path: "^src/(transport/http/|client/service-client\\.ts$)", holds: "undici pools, the dispatcher, the fetch and request adapters" },
  { name: "mesh", path: "^src/(mesh|mesh-internals|service-readings)\\.ts$", holds: "createMesh, which assembles the stack; what it hands the gRPC plug-in and reads for snapshots" },
  // Above mesh: grpcMesh(mesh) takes a Mesh made by createMesh and reads its internals, and mesh.ts must
  // not import it (proxyless/grpc is a separate entry point; @grpc/grpc-js is an optional peer).
  { name: "grpc", path: "^src/(transport/grpc/|grpc/)", holds: "the gRPC plug-in, published as proxyless/grpc" },
  // Above mesh, reading only its public API: proxyless/admin is a separate entry point, and mesh.ts never imports it.
  { name: "admin", path: "^src/admin/", holds: "the admin server (proxyless/admin): read-only JSON over a Mesh" },
  { name: "entry", path: "^src/index\\.ts$", holds: "the public surface of proxyless, no logic" },
  // The proxyless command (the package's bin): it uses the mesh and its compilers as a user's program would.
  { name: "cli", path: "^src/cli/", holds: "the proxyless command: check, explain, status" },
  // On top: the test kit (proxyless/testing) may use any part of the library to fake a world.
  { name: "testing", path: "^src/testing/", holds: "MockRegistry, FakeConsul, fake clock, test CA" },
];

/**
 * The paths of the floors a file on floor `index` may import.
 *
 * @param {number} index
 */
function allowedBelow(index) {
  return FLOORS.slice(0, index + 1).map((floor) => floor.path);
}

/** @type {import("dependency-cruiser").IForbiddenRuleType[]} */
const floorRules = FLOORS.map((floor, index) => ({
  name: `floor-${floor.name}`,
  severity: "error",
  comment:
    `${floor.name} (${floor.holds}) may import only its own floor` +
    (index === 0 ? "." : ` and the floors below it: ${FLOORS.slice(0, index).map((f) => f.name).join(", ")}.`) +
    " Move the shared type or helper down, or have the lower floor own an interface that the upper one satisfies.",
  from: { path: floor.path },
  to: { path: "^src/", pathNot: allowedBelow(index) },
}));

/** @type {import("dependency-cruiser").IConfiguration} */
export default {
  forbidden: [
    ...floorRules,
    {
      name: "floor-unplaced",
      severity: "error",
      comment: "Every file of src/ sits on one floor: add its folder to FLOORS in .dependency-cruiser.js (and to docs/architecture.md).",
      from: { path: "^src/", pathNot: FLOORS.map((floor) => floor.path) },
      to: {},
    },
    {
      // A cycle makes its files one unit that can only be read, loaded and tested together; type-only
      // imports count, since they tie the files' designs together just the same.
      name: "no-cycle",
      severity: "error",
      comment: "Import cycle: break it by moving the shared part into its own file, or down a floor.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      // src/index.ts, src/grpc/index.ts and src/testing/index.ts are what users import. A library file
      // that imports one of them pulls in the whole entry point and makes cycles through it.
      name: "no-entry-point-import",
      severity: "error",
      comment: "src/index.ts, src/grpc/index.ts, src/admin/index.ts and src/testing/index.ts are for users: import the file that defines the name.",
      from: { path: "^src/" },
      to: { path: "^src/(index|grpc/index|admin/index|testing/index)\\.ts$" },
    },
    {
      // The published package holds src/ and dist/ only: an import of the tests, benchmarks or examples
      // would not resolve in an installed copy.
      name: "src-not-to-test-bench-examples",
      severity: "error",
      comment: "src/ never imports test/, bench/ or examples/ (they are not published, and they sit above the library).",
      from: { path: "^src/" },
      to: { path: "^(test|bench|examples)/" },
    },
    {
      // proxyless and proxyless/testing must load without @grpc/grpc-js, an optional peer dependency.
      name: "grpc-js-only-in-grpc",
      severity: "error",
      comment: "@grpc/grpc-js is an optional peer: only the gRPC plug-in (src/transport/grpc/, src/grpc/) imports it.",
      from: { path: "^src/", pathNot: "^src/(transport/grpc|grpc)/" },
      to: { path: "^node_modules/@grpc/grpc-js/" },
    },
    {
      // An import the checker cannot resolve is an import none of these rules can see.
      name: "not-to-unresolvable",
      severity: "error",
      comment: "This import does not resolve, so no rule can check it: fix the path (imports name the .ts file).",
      from: { path: "^src/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Type-only imports (`import type`) are erased by the compiler but are dependencies all the same:
    // see them, so that layering and cycles count them.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Record imports of packages, never read inside them: this keeps the run to a few seconds.
    doNotFollow: { path: "node_modules" },
  },
};
