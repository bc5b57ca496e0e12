import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { createMesh } from "proxyless";
import { startAdmin } from "proxyless/admin";
import { FakeConsul, MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** Runs `proxyless ARGS` as a child process, as a user's shell would (the source, on this Node). */
function proxyless(args: readonly string[], env: Record<string, string> = {}): Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CONSUL_") && k !== "PROXYLESS_ADMIN_TOKEN"));
    execFile(process.execPath, ["--conditions=proxyless-source", MAIN, ...args], { env: { ...clean, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr });
    });
  });
}

describe("the proxyless command", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "proxyless-cli-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, json: unknown): string => {
    const path = join(dir, name);
    writeFileSync(path, typeof json === "string" ? json : JSON.stringify(json));
    return path;
  };

  it("--help lists the commands and exit codes; a wrong command line exits 2 with a hint", async () => {
    const help = await proxyless(["--help"]);
    assert.equal(help.code, 0);
    for (const word of ["check", "explain", "status", "Exit codes"]) assert.ok(help.stdout.includes(word), word);
    const sub = await proxyless(["explain", "--help"]);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /SERVICE METHOD PATH/);
    for (const args of [[], ["bogus"], ["check", "--nope"], ["explain", "--consul", "http://127.0.0.1:1", "orders"], ["check", "a.json", "--consul", "http://x"]]) {
      const r = await proxyless(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /proxyless|Usage/);
    }
  });

  it("check: compiles entries as the mesh would and reports each problem with its entry and field (exit 1)", async () => {
    const bad = file("bad.json", [
      { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathRegex: "(a" } }, Destination: { Service: "api" } }] },
      { Kind: "service-resolver", Name: "api", DefaultSubset: "v9" },
      { Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathRegex: "(b" } }] }, { Name: "x", Peer: "other", Action: "allow" }] },
      { Kind: "service-splitter", Name: "api", Splits: [{ Weight: 60, Service: "a" }, { Weight: 30, Service: "b" }] },
    ]);
    const r = await proxyless(["check", bad]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.ok(lines.some((l) => l.includes("bad.json[0]: service-router/web at 'Routes[0].Match.HTTP.PathRegex'")), r.stdout);
    assert.ok(lines.some((l) => l.includes("service-resolver/api at 'DefaultSubset'") && l.includes("v9")), r.stdout);
    assert.ok(lines.some((l) => l.includes("service-intentions/api at 'Sources[0].Permissions[0].HTTP.PathRegex'")), r.stdout);
    assert.ok(lines.some((l) => l.includes("service-intentions/api at 'Sources[1].Peer'")), r.stdout);
    assert.ok(lines.some((l) => l.includes("service-splitter/api") && /100/.test(l)), r.stdout);
    assert.match(lines.at(-1) ?? "", /^5 problems in 4 entries$/);
    const json = await proxyless(["check", "--json", bad]);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout) as { problems: { entry: string; field: string }[] };
    assert.equal(parsed.problems.length, 5);
  });

  it("check: a chain across files (a split to a subset no resolver defines) is a problem; a good set exits 0", async () => {
    const defaults = file("defaults.json", [
      { Kind: "service-defaults", Name: "web", Protocol: "http" },
      { Kind: "service-defaults", Name: "api", Protocol: "http" },
    ]);
    const split = file("split.json", { Kind: "service-splitter", Name: "web", Splits: [{ Weight: 100, Service: "api", ServiceSubset: "canary" }] });
    const broken = await proxyless(["check", defaults, split]);
    assert.equal(broken.code, 1, broken.stdout);
    assert.match(broken.stdout, /canary/);
    const resolver = file("resolver.json", { Kind: "service-resolver", Name: "api", Subsets: { canary: { Filter: "Service.Meta.version == 2" } } });
    const good = await proxyless(["check", defaults, split, resolver]);
    assert.equal(good.code, 0, good.stdout);
    assert.match(good.stdout, /^ok: 4 entries compile$/m);
  });

  it("check: a duplicate names where the first copy is; entries of another namespace are skipped; intentions as Consul checks them", async () => {
    const a = file("a.json", { Kind: "service-router", Name: "web", Routes: [] });
    const b = file("b.json", [
      { Kind: "service-resolver", Name: "web" },
      { Kind: "service-router", Name: "web", Routes: [] },
      { Kind: "service-router", Name: "api", Namespace: "team", Routes: [{ Match: { HTTP: { PathRegex: "(" } } }] },
      { Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{}] }, { Name: "db" }] },
    ]);
    const r = await proxyless(["check", a, b]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /b\.json\[1\]: service-router\/web at 'Name': the same entry is given twice \(first in .*a\.json\)/);
    assert.ok(!r.stdout.includes("service-router/api"), "the other namespace's entry is not checked");
    assert.match(r.stdout, /service-intentions\/api at 'Sources\[0\]\.Permissions\[0\]\.Action': expected allow or deny/);
    assert.match(r.stdout, /service-intentions\/api at 'Sources\[1\]\.Action'/);
    assert.match(r.stdout, /^3 problems in 5 entries$/m);
  });

  it("help, and addresses it will not use: a URL with credentials is refused without echoing them", async () => {
    const help = await proxyless(["help", "check"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /check FILE/);
    const creds = await proxyless(["check", "--consul", "http://admin:hunter2@127.0.0.1:notaport/"]);
    assert.equal(creds.code, 2);
    assert.ok(!creds.stderr.includes("hunter2"), creds.stderr);
    const withPath = await proxyless(["check", "--consul", "http://127.0.0.1:8500/consul"]);
    assert.equal(withPath.code, 2);
    assert.match(withPath.stderr, /without a path/);
  });

  it("check: a file it cannot read or parse exits 3 and says which", async () => {
    const missing = await proxyless(["check", join(dir, "nope.json")]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /nope\.json.*ENOENT/);
    const hcl = await proxyless(["check", file("router.hcl", 'Kind = "service-router"')]);
    assert.equal(hcl.code, 3);
    assert.match(hcl.stderr, /not JSON/);
  });

  describe("against Consul", () => {
    let consul: FakeConsul;
    let backends: Backend[];
    before(async () => {
      consul = await FakeConsul.start();
      backends = await startBackends(2);
      for (const b of backends) {
        const res = await request(`${consul.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "orders", ID: b.endpoint.id, Address: "127.0.0.1", Port: b.port, Meta: { version: b === backends[0] ? "1" : "2" } }) });
        assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
      for (const entry of [
        { Kind: "service-defaults", Name: "orders", Protocol: "http" },
        { Kind: "service-resolver", Name: "orders", Subsets: { v2: { Filter: 'Service.Meta.version == "2"' } } },
        { Kind: "service-router", Name: "orders", Routes: [{ Match: { HTTP: { PathPrefix: "/beta/" } }, Destination: { ServiceSubset: "v2", PrefixRewrite: "/" } }] },
      ]) {
        const res = await request(`${consul.url}/v1/config`, { method: "PUT", body: JSON.stringify(entry) });
        assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
    });
    after(async () => {
      await consul.close();
      await Promise.all(backends.map((b) => b.close()));
    });

    it("check --consul: the entries Consul holds compile (exit 0)", async () => {
      const r = await proxyless(["check", "--consul", consul.url]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^ok: 3 entries compile$/m);
    });

    it("explain: where a request would go against the live config, and why", async () => {
      const beta = await proxyless(["explain", "--consul", consul.url, "orders", "GET", "/beta/items"]);
      assert.equal(beta.code, 0, beta.stderr);
      assert.match(beta.stdout, /route: #0/);
      assert.match(beta.stdout, /target: orders \(subset v2\)/);
      assert.match(beta.stdout, /path sent: \/items/);
      assert.ok(beta.stdout.includes(backends[1]!.endpoint.id) && !beta.stdout.includes(`${backends[0]!.endpoint.id} `), beta.stdout);
      const plain = await proxyless(["explain", "--json", "orders", "GET", "/v1/items", "-H", "x-user: 7"], { CONSUL_HTTP_ADDR: consul.url });
      assert.equal(plain.code, 0, plain.stderr);
      const why = JSON.parse(plain.stdout) as { route?: unknown; candidates: unknown[]; request: { headers: Record<string, string> } };
      assert.equal(why.route, undefined);
      assert.equal(why.candidates.length, 2);
    });

    it("explain: a request that would fail exits 1 with the reason; an unreachable Consul exits 3", async () => {
      for (const entry of [
        { Kind: "service-defaults", Name: "gone", Protocol: "http" },
        { Kind: "service-router", Name: "orders", Routes: [{ Match: { HTTP: { PathPrefix: "/gone/" } }, Destination: { Service: "gone" } }] },
      ]) {
        const res = await request(`${consul.url}/v1/config`, { method: "PUT", body: JSON.stringify(entry) });
        assert.equal(res.statusCode, 200, await res.body.text());
      }
      const gone = await proxyless(["explain", "--consul", consul.url, "orders", "GET", "/gone/x"]);
      assert.equal(gone.code, 1, gone.stdout + gone.stderr);
      assert.match(gone.stdout, /fails: ERR_/);
      // Not Consul (an HTML page, a JSON object): exit 3 with what it answered, not "ok" or a stack trace.
      const other = createServer((req, res) => (req.url?.includes("service-router") === true ? res.end("<html>hi</html>") : res.end("{}")));
      other.listen(0, "127.0.0.1");
      await once(other, "listening");
      const otherUrl = `http://127.0.0.1:${String((other.address() as AddressInfo).port)}`;
      try {
        const html = await proxyless(["check", "--consul", otherUrl]);
        assert.equal(html.code, 3, html.stdout + html.stderr);
        assert.match(html.stderr, /Consul's HTTP address/);
        const status = await proxyless(["status", otherUrl]);
        assert.equal(status.code, 3, status.stdout + status.stderr);
        assert.match(status.stderr, /not a mesh snapshot|other than a mesh snapshot/);
      } finally {
        other.close();
      }
      const down = await proxyless(["explain", "--consul", "http://127.0.0.1:1", "orders", "GET", "/"]);
      assert.equal(down.code, 3);
      assert.match(down.stderr, /cannot reach Consul at http:\/\/127\.0\.0\.1:1/);
    });
  });

  describe("status", () => {
    let backends: Backend[];
    before(async () => {
      backends = await startBackends(2);
    });
    after(() => Promise.all(backends.map((b) => b.close())));

    it("prints a running service's snapshot as a table, and asks for the token when the admin server wants one", async () => {
      const mesh = createMesh({ service: "web", registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }) });
      await (await mesh.client("orders").request({ path: "/" })).body.dump();
      const token = "a-token-for-the-status-test";
      const admin = await startAdmin(mesh, { port: 0, token });
      try {
        const denied = await proxyless(["status", admin.url]);
        assert.equal(denied.code, 3);
        assert.match(denied.stderr, /token/);
        const shown = await proxyless(["status", admin.url], { PROXYLESS_ADMIN_TOKEN: token });
        assert.equal(shown.code, 0, shown.stderr);
        assert.match(shown.stdout, /^web · MockRegistry/m);
        assert.match(shown.stdout, /^orders {2}known, round_robin/m);
        for (const b of backends) assert.match(shown.stdout, new RegExp(`${b.endpoint.id}\\s+127\\.0\\.0\\.1:${String(b.port)}\\s+passing\\s+in rotation`));
        const json = await proxyless(["status", "--json", "--token", token, admin.url]);
        assert.equal((JSON.parse(json.stdout) as { services: unknown[] }).services.length, 1);
      } finally {
        await admin.close();
        await mesh.close();
      }
      const gone = await proxyless(["status", admin.url]);
      assert.equal(gone.code, 3);
      assert.match(gone.stderr, /cannot reach the admin server/);
    });
  });
});
