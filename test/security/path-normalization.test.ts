import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConsulRegistry, createMesh, type Identity, type InboundDeniedEvent, type InboundOptions, type Mesh } from "proxyless";
import { FakeConsul } from "proxyless/testing";
import { TlsBackend } from "../helpers/tls-backend.ts";
import { rawMtls, type RawAnswer } from "../helpers/raw-mtls.ts";
import { putEntry } from "../helpers/consul-entries.ts";

// The attacker is `web`, a caller the intentions know, holding its own valid Connect certificate. It
// writes request targets on the wire as it likes; the app behind mesh.inbound() routes on req.url.
// Classes of path-confusion bypasses from Envoy's advisories: CVE-2019-9901 (dot segments, escaped
// dots), CVE-2021-29492 (escaped slashes %2F / %5C), and dot segments carrying ;parameters (/..;/admin).


/** Every way the attacker spells `/admin/users` (each one reaches /admin/users in some server or router). */
const ADMIN_SPELLINGS = [
  "/public/../admin/users",
  "/./admin/users",
  "/public/./../admin/users",
  "/public/%2e%2e/admin/users",
  "/public/.%2E/admin/users",
  "/%2E/admin/users",
  "/%61dmin/users",
  "/%61%64%6D%69%6E/users",
  "//admin/users",
  "/public\\..\\admin/users",
  "/public/..\\admin/users",
  "/admin#frag",
  "/public#/../admin/users",
  "http://orders/admin/users",
  "https://orders:443/public/../admin/users",
  // CVE-2021-29492: escaped slashes
  "/public/..%2Fadmin/users",
  "/public/..%2fadmin/users",
  "/public%2F..%2Fadmin/users",
  "/public/..%5Cadmin/users",
  "/public/%2e%2e%2fadmin/users",
  // dot segments carrying ;parameters (Tomcat-style: ..;x is ..)
  "/..;/admin/users",
  "/public/..;/admin/users",
  "/public/..;jsessionid=1/admin/users",
  "/public/.;/../admin/users",
  "/public/%2e%2e;/admin/users",
  "/public/..%3B/admin/users",
  "/public/..%3b/admin/users",
];

describe("path normalization before L7 authorization (a caller spells a forbidden path another way)", () => {
  let fake: FakeConsul;
  let consul: ConsulRegistry;
  let web: Identity;
  const meshes: Mesh[] = [];
  const backends: TlsBackend[] = [];
  const stopWeb: (() => Promise<void>)[] = [];

  before(async () => {
    fake = await FakeConsul.start();
    consul = new ConsulRegistry({ url: fake.url, initialBackoffMs: 20 });
    // L7 intentions need an L7 protocol (Consul refuses them on tcp, its default).
    for (const name of ["orders", "files", "vault"]) await putEntry(fake, { Kind: "service-defaults", Name: name, Protocol: "http" });
    // A deny rule: web may call anything on `orders` except /admin...
    await putEntry(fake, {
      Kind: "service-intentions",
      Name: "orders",
      Sources: [{ Name: "web", Permissions: [{ Action: "deny", HTTP: { PathPrefix: "/admin" } }, { Action: "allow", HTTP: { PathPrefix: "/" } }] }],
    });
    // ... an allow rule: web may call only /public... on `files`.
    await putEntry(fake, {
      Kind: "service-intentions",
      Name: "files",
      Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/public" } }] }],
    });
    const source = consul.connectIdentity("web");
    stopWeb.push(() => source.close());
    web = await source.ready();
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(stopWeb.map((s) => s()));
    await fake.close();
  });

  /** A server mesh for `service` with Connect identity, serving mTLS behind mesh.inbound(); its app echoes req.url. */
  async function server(service: string, options: InboundOptions = {}): Promise<{ backend: TlsBackend; denied: InboundDeniedEvent[] }> {
    const mesh = createMesh({ registry: consul, service, tls: { identity: consul.connectIdentity(service) } });
    meshes.push(mesh);
    const denied: InboundDeniedEvent[] = [];
    mesh.on("inbound_denied", (e) => denied.push(e));
    const inbound = mesh.inbound({ authorize: "consul", ...options });
    const backend = await TlsBackend.startWith(`${service}-0`, await inbound.serverOptions(), inbound);
    inbound.attach(backend.server);
    backends.push(backend);
    return { backend, denied };
  }

  /** The path the app saw, from the backend's echo. */
  const appPath = (answer: RawAnswer): string => (JSON.parse(answer.body) as { path: string }).path;

  it("a deny rule (PathPrefix /admin) denies every spelling of /admin: the app never sees one", async () => {
    const { backend } = await server("orders");
    assert.equal((await rawMtls(backend.port, web, "/users")).status, 200, "control: the rest is allowed");
    const passed: string[] = [];
    for (const target of ADMIN_SPELLINGS) {
      const answer = await rawMtls(backend.port, web, target);
      if (answer.status === 200) passed.push(`${target} -> app saw ${appPath(answer)}`);
      else assert.ok(answer.status === 400 || answer.status === 403, `${target}: ${answer.status}`);
    }
    assert.deepEqual(passed, [], "spellings that reached the app");
    assert.equal(backend.requests, 1, "only the control request reached the app");
  });

  it("an allow rule (PathPrefix /public) does not allow /public/../admin or any other spelling that leaves /public", async () => {
    const { backend } = await server("files");
    const passed: string[] = [];
    for (const target of ADMIN_SPELLINGS) {
      const answer = await rawMtls(backend.port, web, target);
      if (answer.status === 200) passed.push(`${target} -> app saw ${appPath(answer)}`);
    }
    assert.deepEqual(passed, [], "spellings that reached the app");
    assert.equal(backend.requests, 0);
  });

  it("hands the app the normalized path it authorized, with the query exactly as sent", async () => {
    const { backend } = await server("files");
    const seen = async (target: string): Promise<[number, string]> => {
      const answer = await rawMtls(backend.port, web, target);
      return [answer.status, answer.status === 200 ? appPath(answer) : answer.body];
    };
    assert.deepEqual(await seen("/public/menu"), [200, "/public/menu"]);
    assert.deepEqual(await seen("/public/./a/../menu"), [200, "/public/menu"]);
    assert.deepEqual(await seen("/%70ublic/%7Euser/menu"), [200, "/public/~user/menu"]);
    assert.deepEqual(await seen("/public//menu/"), [200, "/public/menu/"]);
    // Dot segments first, then slashes merged (Envoy's order; WHATWG URL also lets .. take the empty segment).
    assert.deepEqual(await seen("/public/x//../menu"), [200, "/public/x/menu"]);
    assert.deepEqual(await seen("/public/a%2fb%3f"), [200, "/public/a%2Fb%3F"], "%2F is kept (upper-cased) inside its segment");
    assert.deepEqual(await seen("/public/menu?next=/../admin&x=%2e%2e#"), [400, "Bad Request: the request target is not a path the server accepts\n"]);
    assert.deepEqual(await seen("/public/a/../menu?next=/../admin&x=%2e%2e"), [200, "/public/menu?next=/../admin&x=%2e%2e"]);
    assert.deepEqual(await seen("/public/..."), [200, "/public/..."], "three dots is a name, not a dot segment");
  });

  it("refuses fragments, absolute-form and asterisk-form targets and malformed escapes with 400, reporting why", async () => {
    const { backend, denied } = await server("orders");
    for (const [target, method, why] of [
      ["/users#x", "GET", /fragment/],
      ["http://orders/users", "GET", /absolute form/],
      ["*", "OPTIONS", /does not start with \//],
      ["/users/%zz", "GET", /two hex digits/],
      ["/users/%4", "GET", /two hex digits/],
    ] as const) {
      const answer = await rawMtls(backend.port, web, target, method);
      assert.equal(answer.status, 400, target);
      assert.equal(answer.headers["x-proxyless-denied"], "1");
      assert.match(denied.at(-1)?.reason ?? "", why, target);
    }
    assert.equal(denied.find((e) => e.reason.includes("absolute"))?.path, undefined, "an absolute-form target is not reported as a path");
    assert.equal(backend.requests, 0);
  });

  it('escapedSlashes: "decode" reads %2F and %5C as / (a deny of /admin/ holds against /admin%2Fusers); "reject" answers 400', async () => {
    await putEntry(fake, {
      Kind: "service-intentions",
      Name: "vault",
      Sources: [{ Name: "web", Permissions: [{ Action: "deny", HTTP: { PathPrefix: "/admin/" } }, { Action: "allow", HTTP: { PathPrefix: "/" } }] }],
    });
    const decode = await server("vault", { escapedSlashes: "decode" });
    assert.equal((await rawMtls(decode.backend.port, web, "/admin%2Fusers")).status, 403);
    assert.equal((await rawMtls(decode.backend.port, web, "/admin%5cusers")).status, 403);
    const fine = await rawMtls(decode.backend.port, web, "/public%2F..%2Fhome");
    assert.deepEqual([fine.status, appPath(fine)], [200, "/home"]);

    const reject = await server("vault", { escapedSlashes: "reject" });
    assert.equal((await rawMtls(reject.backend.port, web, "/files/a%2Fb")).status, 400);
    assert.equal((await rawMtls(reject.backend.port, web, "/files/a%5Cb")).status, 400);
    assert.equal((await rawMtls(reject.backend.port, web, "/files/a")).status, 200);

    // Kept (the default): the app sees %2F inside the segment it was authorized in, never a new /.
    const keep = await server("vault");
    const kept = await rawMtls(keep.backend.port, web, "/admin%2fusers");
    assert.deepEqual([kept.status, appPath(kept)], [200, "/admin%2Fusers"]);
  });

  it('pathNormalization: "reject" answers 400 to a path not in normal form instead of rewriting it', async () => {
    const { backend, denied } = await server("files", { pathNormalization: "reject" });
    assert.equal((await rawMtls(backend.port, web, "/public/menu")).status, 200);
    for (const target of ["/public/./menu", "/public//menu", "/%70ublic/menu", "/public/a%2fb", "/public\\menu"]) {
      assert.equal((await rawMtls(backend.port, web, target)).status, 400, target);
    }
    assert.match(denied.at(-1)?.reason ?? "", /not in normal form/);
    assert.equal(backend.requests, 1);
  });

  it("refuses unknown values of the options", () => {
    const mesh = createMesh({ registry: consul, service: "orders", tls: { identity: consul.connectIdentity("orders") } });
    meshes.push(mesh);
    assert.throws(() => mesh.inbound({ pathNormalization: "off" as "reject" }), /inbound\.pathNormalization.*expected one of "normalize", "reject"/);
    assert.throws(() => mesh.inbound({ escapedSlashes: "unescape" as "keep" }), /inbound\.escapedSlashes/);
  });
});
