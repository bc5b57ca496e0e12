import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { Server as GrpcServer, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { proto } from "./helpers/grpc-backend.ts";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { FakeConsul } from "proxyless/testing";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Two backends that share one script: the first request of all hangs when `hangFirst`, the first to
 * `/fail-first` gets a 503, everything else a 200.
 */
async function backends(hangFirst: boolean): Promise<{ readonly ports: string[]; close(): Promise<void> }> {
  let requests = 0;
  let failed = false;
  const servers: Server[] = [];
  for (let i = 0; i < 2; i++) {
    const server = createServer((req, res) => {
      requests++;
      if (hangFirst && requests === 1) return; // never answered: the client gives up on it
      if (req.url === "/fail-first" && !failed) {
        failed = true;
        res.writeHead(503).end("try again");
        return;
      }
      res.end("ok");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    servers.push(server);
  }
  return {
    ports: servers.map((s) => String((s.address() as AddressInfo).port)),
    close: async () => {
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
      await Promise.all(servers.map((s) => once(s, "close")));
    },
  };
}

/** The same two backends over gRPC (`orders.Orders/Get`, the id in place of the path). */
async function grpcBackends(hangFirst: boolean): Promise<{ readonly ports: string[]; close(): Promise<void> }> {
  let calls = 0;
  let failed = false;
  const servers: GrpcServer[] = [];
  const ports: string[] = [];
  for (let i = 0; i < 2; i++) {
    const server = new GrpcServer();
    server.addService(proto.Orders.service, {
      get: (call: ServerUnaryCall<{ id: string }, object>, callback: sendUnaryData<object>) => {
        calls++;
        if (hangFirst && calls === 1) return; // never answered
        if (call.request.id === "fail-first" && !failed) {
          failed = true;
          callback({ code: status.UNAVAILABLE, details: "try again" });
          return;
        }
        callback(null, { id: call.request.id });
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
    servers.push(server);
    ports.push(String(port));
  }
  return {
    ports,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.tryShutdown(() => resolve()))));
    },
  };
}

/** Runs the one-call process; resolves with its exit code and output (a crash is an outcome too). */
function runScript(script: string, args: string[]): Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--conditions=proxyless-source", script, ...args], { cwd: root, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

const SCENARIOS: readonly { readonly scenario: string; readonly why: string; readonly outcome: string; readonly hangFirst?: boolean }[] = [
  { scenario: "backoff", why: "waits in a retry backoff", outcome: "200" },
  { scenario: "registry", why: "waits for the registry's first answer", outcome: "200" },
  { scenario: "discovery-timeout", why: "waits for a registry that never answers", outcome: "ERR_DISCOVERY_TIMEOUT" },
  { scenario: "slot", why: "waits for a limit slot", outcome: "200" },
  { scenario: "hedge", why: "waits for a hedge delay", outcome: "200", hangFirst: true },
  { scenario: "deadline", why: "waits for the registry until its deadline", outcome: "ERR_TIMEOUT" },
];

describe("a pending call keeps the process alive; background work does not", () => {
  for (const api of ["request", "fetch", "dispatcher", "grpc"]) {
    for (const { scenario, why, outcome, hangFirst } of SCENARIOS) {
      it(`${api}: a process whose only work is a call that ${why} prints its outcome and exits 0`, async () => {
        const servers = api === "grpc" ? await grpcBackends(hangFirst === true) : await backends(hangFirst === true);
        try {
          const run = await runScript("test/fixtures/keep-alive/one-call.ts", [scenario, api, ...servers.ports]);
          assert.equal(run.code, 0, `exit code ${run.code}; stdout: ${run.stdout}; stderr: ${run.stderr}`);
          const printed = /^outcome: (\S+) after (\d+) ms$/m.exec(run.stdout);
          assert.equal(printed?.[1], outcome, run.stdout);
          // A call's deadline bounds its wait for the registry (the discovery timeout there is 20 s).
          if (scenario === "deadline") assert.ok(Number(printed[2]) < 10_000, run.stdout);
        } finally {
          await servers.close();
        }
      });
    }
  }
});

describe("a wait for the mesh's identity keeps the process alive; closing does not hang on the watches", () => {
  for (const how of ["ready", "inbound"]) {
    it(`${how === "ready" ? "connectIdentity().ready()" : "mesh.inbound().serverOptions()"}, then registry.close(): prints and exits 0`, async () => {
      const fake = await FakeConsul.start();
      try {
        const run = await runScript("test/fixtures/keep-alive/identity.ts", [fake.url, how]);
        assert.equal(run.code, 0, `exit code ${run.code} (null: killed after 20 s); stdout: ${run.stdout}; stderr: ${run.stderr}`);
        assert.match(run.stdout, how === "ready" ? /^identity: spiffe:\/\/.*\/svc\/web$/m : /^server options: requestCert true$/m);
        assert.match(run.stdout, /^closed$/m);
      } finally {
        await fake.close();
      }
    });
  }
});

describe("background work does not keep a process alive", () => {
  it("a process that watches Consul, heartbeats a TTL check, has an endpoint ejected and one ramping up exits by itself when its work is done", async () => {
    const fake = await FakeConsul.start();
    const servers = await Promise.all([
      (async () => {
        const s = createServer((_req, res) => res.writeHead(503).end("broken"));
        s.listen(0, "127.0.0.1");
        await once(s, "listening");
        return s;
      })(),
      (async () => {
        const s = createServer((_req, res) => res.end("ok"));
        s.listen(0, "127.0.0.1");
        await once(s, "listening");
        return s;
      })(),
    ]);
    const [failing, ok] = servers.map((s) => (s.address() as AddressInfo).port) as [number, number];
    try {
      for (const [id, port] of [["orders-broken", failing], ["orders-ok", ok]] as const) {
        const res = await request(`${fake.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "orders", ID: id, Address: "127.0.0.1", Port: port }) });
        assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
      const run = await runScript("test/fixtures/keep-alive/background.ts", [fake.url, String(ok)]);
      assert.equal(run.code, 0, `exit code ${run.code} (null: killed after 20 s); stdout: ${run.stdout}; stderr: ${run.stderr}`);
      assert.match(run.stdout, /ejected \S*orders-broken for \d+ ms/);
      assert.match(run.stdout, /statuses: 200 200 200 503; ramping: true/);
    } finally {
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
      await fake.close();
    }
  });
});
