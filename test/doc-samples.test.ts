import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { FakeConsul } from "proxyless/testing";

/**
 * Every TypeScript sample in README.md and docs/*.md is checked, so none can rot:
 *
 * - A block fenced ```` ```ts ```` is a complete program. It is type-checked on its own and run, and must
 *   exit 0 within 20 s, in the world the docs describe: Consul's agent at 127.0.0.1:8500 (FakeConsul)
 *   knowing `orders`, and two `orders` instances at 127.0.0.1:8080 and 8081 that answer JSON (on ports the
 *   OS chose, put in place of those in the code that runs).
 * - A block fenced ```` ```ts fragment ```` is a part of a program (it uses `mesh`, `registry` and the like
 *   from around it, or serves forever). It is type-checked, with those names declared, and not run.
 */

const root = fileURLToPath(new URL("..", import.meta.url));
const work = join(root, "test", ".doc-samples");

interface Sample {
  readonly file: string;
  readonly line: number;
  readonly fragment: boolean;
  readonly code: string;
  /** The generated file's name. */
  readonly name: string;
}

function samples(): Sample[] {
  const docs = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  const out: Sample[] = [];
  for (const file of docs) {
    const text = readFileSync(join(root, file), "utf8");
    for (const m of text.matchAll(/^```(ts|typescript)([^\n]*)\n([\s\S]*?)^```$/gm)) {
      const line = text.slice(0, m.index).split("\n").length;
      const info = (m[2] ?? "").trim().split(/\s+/);
      out.push({ file, line, fragment: info.includes("fragment"), code: m[3]!, name: `${file.replace(/[/.]/g, "-")}-${line}.ts` });
    }
  }
  return out;
}

/** What a fragment may use without declaring it: each name, and the line that provides it. */
const FRAGMENT_NAMES: Readonly<Record<string, string>> = {
  mesh: `declare const mesh: import("proxyless").Mesh;`,
  registry: `declare const registry: import("proxyless/testing").MockRegistry;`,
  createMesh: `import { createMesh } from "proxyless";`,
  isMeshError: `import { isMeshError } from "proxyless";`,
  meshErrorOf: `import { meshErrorOf } from "proxyless";`,
  ConsulRegistry: `import { ConsulRegistry } from "proxyless";`,
  readFileSync: `import { readFileSync } from "node:fs";`,
  http: `import http from "node:http";`,
  handle: `declare function handle(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): void;`,
  traceExporter: `declare const traceExporter: import("@opentelemetry/sdk-trace").SpanExporter;`,
  reader: `declare const reader: import("@opentelemetry/sdk-metrics").MetricReader;`,
};

/** The fragment with the names it uses but does not import declared before it. */
function withContext(code: string): string {
  const imported = new Set([...code.matchAll(/^import\s+(?:type\s+)?([\s\S]*?)\s+from\s/gm)].flatMap((m) => m[1]!.replace(/[{}*]/g, " ").split(/[\s,]+/).filter((w) => w !== "" && w !== "as" && w !== "type")));
  const declared = new Set([...code.matchAll(/^(?:const|let|var|function|class)\s+(\w+)/gm)].map((m) => m[1]!));
  const context = Object.entries(FRAGMENT_NAMES)
    .filter(([name]) => !imported.has(name) && !declared.has(name) && new RegExp(`\\b${name}\\b`).test(code))
    .map(([, line]) => line);
  return `${context.join("\n")}\n${code}\nexport {};\n`;
}

function run(file: string, args: string[], cwd: string, timeout: number): Promise<{ readonly code: number | null; readonly out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, out: `${stdout}${stderr}` });
    });
  });
}

/** An `orders` instance on 127.0.0.1, port 0: JSON naming the path it was asked. */
async function listen(): Promise<Server> {
  const server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ id: "42", path: req.url }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

const all = samples();

/**
 * The world the complete samples run in, on ports the OS chose: the samples' own ports (Consul's 8500,
 * `orders` on 8080 and 8081) are replaced by these in the code that runs, so a Consul agent or a server
 * already on this machine changes nothing.
 */
async function startWorld(): Promise<{ readonly ports: Readonly<Record<string, string>>; close(): Promise<void> }> {
  const servers = [await listen(), await listen()];
  const consul = await FakeConsul.start();
  const [a, b] = servers.map((s) => String((s.address() as AddressInfo).port)) as [string, string];
  const res = await request(`${consul.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "orders", ID: "orders-1", Address: "127.0.0.1", Port: Number(a) }) });
  await res.body.dump();
  assert.equal(res.statusCode, 200, "FakeConsul took the orders registration");
  return {
    ports: { "8500": new URL(consul.url).port, "8080": a, "8081": b },
    close: async () => {
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
      await consul.close();
    },
  };
}

const world = await startWorld();

/** A complete sample as it runs: its ports replaced by the world's. */
function inWorld(code: string): string {
  return code.replace(/\b(8500|8080|8081)\b/g, (port) => world.ports[port] ?? port);
}

describe("the TypeScript samples in README.md and docs/", () => {
  before(() => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, "tsconfig.json"), JSON.stringify({ extends: "../../tsconfig.json", compilerOptions: { noUnusedLocals: false, noUnusedParameters: false, noUncheckedIndexedAccess: false }, include: ["*.ts"], exclude: [] }));
    // What the gRPC sample loads from its working directory.
    copyFileSync(join(root, "examples", "grpc", "orders.proto"), join(work, "orders.proto"));
    for (const s of all) writeFileSync(join(work, s.name), s.fragment ? withContext(s.code) : inWorld(s.code));
  });

  after(async () => {
    await world.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("there are complete samples and fragments, and every sample is one or the other", () => {
    assert.ok(all.filter((s) => !s.fragment).length >= 5, "complete samples found");
    assert.ok(all.some((s) => s.fragment), "fragments found");
  });

  it("every sample type-checks (fragments with the names they borrow declared)", async () => {
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    const { code, out } = await run(process.execPath, [tsc, "-p", join(work, "tsconfig.json"), "--noEmit"], root, 120_000);
    const named = out.replace(/test\/\.doc-samples\/([\w-]+)-(\d+)\.ts/g, (_m, f: string, l: string) => `${f.replace(/-md$/, ".md").replace(/^docs-/, "docs/")} (sample at line ${l})`);
    assert.equal(code, 0, named);
  });

  for (const s of all.filter((x) => !x.fragment)) {
    it(`${s.file}, the sample at line ${s.line}, runs and exits 0`, async () => {
      const { code, out } = await run(process.execPath, ["--conditions=proxyless-source", join(work, s.name)], work, 20_000);
      assert.equal(code, 0, `exit code ${String(code)} (null: still running after 20 s):\n${out}`);
    });
  }
});
