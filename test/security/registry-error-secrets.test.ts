import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { ConsulRegistry, createMesh, type ConsulRegistryOptions, type RegistryErrorEvent } from "proxyless";
import { FakeConsul } from "proxyless/testing";
import { ScriptedConsul, json } from "../helpers/scripted-consul.ts";

/**
 * The Consul ACL token must not be reachable from any error the mesh hands out: registry_error events,
 * the MeshError a caller gets, identity and authorization failures, registration failures. A logger that
 * prints an error in full (util.inspect at any depth, or JSON) must not print the token.
 */

const TOKEN = "b1f7c0de-5ec2-4e7a-9d3e-7c0ffee70ce2";
const MiB = 1024 * 1024;

/** Every rendering a logger may make of `value`; none may contain the token. */
function assertNoToken(what: string, value: unknown): void {
  const seen = new WeakSet();
  const renderings = [
    inspect(value, { depth: Infinity }),
    inspect(value, { depth: Infinity, showHidden: true }),
    // As loggers do: circular references dropped rather than thrown on.
    JSON.stringify(value, (_key, v: unknown) => {
      if (v !== null && typeof v === "object") {
        if (seen.has(v)) return "[Circular]";
        seen.add(v);
      }
      return v;
    }) ?? "",
    String(value),
    value instanceof Error ? String(value.stack) : "",
  ];
  for (const shown of renderings) assert.ok(!shown.includes(TOKEN), `${what} shows the ACL token:\n${shown.slice(0, 3000)}`);
}

/**
 * The registry_error events of a mesh watching `orders` through a registry with the token (until one
 * matches `match`), and the error its first call to `orders` fails with.
 */
async function watchFailures(options: ConsulRegistryOptions, match: RegExp): Promise<{ events: RegistryErrorEvent[]; call: unknown }> {
  const mesh = createMesh({ registry: new ConsulRegistry({ token: TOKEN, initialBackoffMs: 5, ...options }), discoveryTimeout: 200 });
  const events: RegistryErrorEvent[] = [];
  const matched = new Promise<void>((resolve) =>
    mesh.on("registry_error", (e) => {
      events.push(e);
      if (match.test(e.error.message)) resolve();
    }),
  );
  const call = await mesh.client("orders").request({ path: "/" }).then(
    () => assert.fail("the call succeeded"),
    (err: unknown) => err,
  );
  await matched;
  await mesh.close();
  return { events, call };
}

function assertClean({ events, call }: { events: RegistryErrorEvent[]; call: unknown }): void {
  assert.ok(events.length > 0);
  for (const e of events) assertNoToken(`the registry_error event "${e.error.message}"`, e);
  assertNoToken("the caller's error", call);
}

async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("the Consul ACL token is in no error the mesh hands out", { timeout: 30_000 }, () => {
  let acl: FakeConsul;
  let open: FakeConsul;
  before(async () => {
    acl = await FakeConsul.start({ aclTokens: { admin: { serviceWrite: [""], intentions: "write" } } });
    open = await FakeConsul.start();
  });
  after(() => Promise.all([acl.close(), open.close()]));

  it("403 from a watch (token unknown to Consul)", async () => {
    assertClean(await watchFailures({ url: acl.url }, /'orders'.*HTTP 403/));
  });

  it("500 from a watch", async () => {
    open.failNext(1000, 500);
    try {
      assertClean(await watchFailures({ url: open.url }, /'orders'.*HTTP 500/));
    } finally {
      open.failNext(0);
    }
  });

  it("an answer that is not JSON", async () => {
    open.garbageNext(1000);
    try {
      assertClean(await watchFailures({ url: open.url }, /'orders'.*not JSON/));
    } finally {
      open.garbageNext(0);
    }
  });

  it("connection refused", async () => {
    assertClean(await watchFailures({ url: `http://127.0.0.1:${await closedPort()}` }, /'orders'.*ECONNREFUSED/));
  });

  it("no answer in time (a hung agent)", async () => {
    const hung = await ScriptedConsul.start(); // answers nothing to the health query
    try {
      assertClean(await watchFailures({ url: hung.url, waitSeconds: 1 }, /'orders'.*no answer within/));
    } finally {
      await hung.close();
    }
  });

  it("an answer over the size cap", async () => {
    const hostile = await ScriptedConsul.start();
    try {
      hostile.script("/v1/health/service/orders", (res) => json(res, ["x".repeat(2 * MiB)], 3));
      assertClean(await watchFailures({ url: hostile.url, maxResponseBytes: MiB }, /'orders'.*larger than 1 MiB/));
    } finally {
      await hostile.close();
    }
  });

  it("an answer nested too deep", async () => {
    const hostile = await ScriptedConsul.start();
    try {
      hostile.script("/v1/health/service/orders", (res) => {
        res.writeHead(200, { "content-type": "application/json", "x-consul-index": "3" });
        res.end("[".repeat(100) + "]".repeat(100));
      });
      assertClean(await watchFailures({ url: hostile.url }, /'orders'.*nested deeper/));
    } finally {
      await hostile.close();
    }
  });

  it("an answer emptied by ACL filtering", async () => {
    const hostile = await ScriptedConsul.start();
    try {
      hostile.script("/v1/health/service/orders", (res) => json(res, [], 3, { "x-consul-results-filtered-by-acls": "true" }));
      assertClean(await watchFailures({ url: hostile.url }, /may not read service 'orders'/));
    } finally {
      await hostile.close();
    }
  });

  it("an agent (or what answers in its place) that quotes the token back in its error", async () => {
    const echo = await ScriptedConsul.start();
    try {
      echo.script("/v1/health/service/orders", (res, req) => {
        res.writeHead(403, { "content-type": "text/plain" });
        res.end(`Permission denied: token ${String(req.headers["x-consul-token"])} lacks service:read`);
      });
      const failures = await watchFailures({ url: echo.url }, /'orders'.*HTTP 403/);
      assertClean(failures);
      assert.ok(failures.events.some((e) => e.error.message.includes("token [token] lacks service:read")));
    } finally {
      await echo.close();
    }
  });

  it("the Connect leaf certificate refused (403)", async () => {
    const registry = new ConsulRegistry({ url: acl.url, token: TOKEN, initialBackoffMs: 5 });
    try {
      const identity = registry.connectIdentity("web");
      const error = await new Promise<Error>((resolve) => identity.subscribe((u) => "error" in u && resolve(u.error)));
      assert.match(error.message, /403/);
      assertNoToken("the identity failure", error);
    } finally {
      await registry.close();
    }
  });

  it("authorize and intentions refused (403), and the agent unreachable", async () => {
    for (const url of [acl.url, `http://127.0.0.1:${await closedPort()}`]) {
      const registry = new ConsulRegistry({ url, token: TOKEN });
      try {
        const authority = registry.connectAuthority();
        const authorize = await authority.authorize("web", "spiffe://td.consul/ns/default/dc/dc1/svc/api", "01").then(() => assert.fail("authorized"), (err: unknown) => err);
        assertNoToken("the authorize failure", authorize);
        const intentions = await authority.intentions("web").then(() => assert.fail("intentions read"), (err: unknown) => err);
        assertNoToken("the intentions failure", intentions);
      } finally {
        await registry.close();
      }
    }
  });

  it("a registration refused (403), and the agent unreachable", async () => {
    for (const url of [acl.url, `http://127.0.0.1:${await closedPort()}`]) {
      const registry = new ConsulRegistry({ url, token: TOKEN });
      try {
        const err = await registry.register({ name: "web", port: 8080 }).then(() => assert.fail("registered"), (e: unknown) => e);
        assertNoToken("the registration failure", err);
      } finally {
        await registry.close();
      }
    }
  });
});
