/**
 * The packaging test (`npm run test:package`; `.ci/run` runs it after `npm test`): packs the library,
 * installs the tarball into two apps outside the repository (in os.tmpdir()), one on OpenTelemetry SDK 2.x
 * and one on SDK 3.x, and runs there a program (app/program.mjs) and a node:test file (app/mesh.test.mjs)
 * on Node 22 (the minimum the package supports) and on Node 24 (the repository's pinned `node`). The apps
 * see the installed package only: nothing of the repository's src/.
 *
 * Node 22 comes from the npm registry (the `node` package, as the pinned Node 24 does), installed once
 * into node_modules/.cache/. The temporary directory is removed when everything passed, kept otherwise.
 *
 *   node test/package/run.ts [--keep]
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const APP_FILES = fileURLToPath(new URL("app/", import.meta.url));
const NODE22_DIR = join(ROOT, "node_modules", ".cache", "proxyless-package-test", "node-22");
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const RUN_TIMEOUT_MS = 2 * 60_000;

/** The two apps: the same program and test, with SDK 2.x or SDK 3.x set up the way each line documents. */
const APPS = [
  {
    name: "sdk-2",
    otel: "otel-sdk2.mjs",
    dependencies: { "@opentelemetry/api": "^1.9.0", "@opentelemetry/sdk-trace-base": "2", "@opentelemetry/sdk-trace-node": "2" },
  },
  {
    name: "sdk-3",
    otel: "otel-sdk3.mjs",
    dependencies: { "@opentelemetry/api": "^1.10.0", "@opentelemetry/sdk-trace": "3", "@opentelemetry/context-async-hooks": "3", "@opentelemetry/core": "3" },
  },
] as const;

interface Outcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  readonly stdout: string;
  readonly ms: number;
}

/**
 * The environment of every child: npm's configuration (npm_config_*: registry, proxy, cache) but not the
 * variables of this script's run (npm_package_*, npm_lifecycle_*, the repository as npm's local prefix),
 * no NODE_OPTIONS of ours, and npm on the pinned Node.
 */
const childEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => (!k.startsWith("npm_") || k.startsWith("npm_config_")) && k !== "npm_config_local_prefix" && k !== "NODE_OPTIONS" && k !== "INIT_CWD"),
);
childEnv.PATH = [dirname(process.execPath), process.env.PATH ?? ""].join(delimiter);

function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Outcome> {
  const start = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd, env: childEnv, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let output = "";
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
      output += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => (output += s));
    child.on("error", fail);
    child.on("close", (code, signal) => done({ code, signal, output, stdout, ms: performance.now() - start }));
  });
}

function ok(o: Outcome): boolean {
  return o.code === 0 && o.signal === null;
}

function indent(text: string): string {
  return text.trimEnd().replace(/^/gm, "    ");
}

/** Runs a step that must succeed; throws with its output otherwise. */
async function must(what: string, command: string, args: readonly string[], cwd: string): Promise<Outcome> {
  const o = await run(command, args, cwd, INSTALL_TIMEOUT_MS);
  if (!ok(o)) throw new Error(`${what} failed (${o.signal ?? `exit ${String(o.code)}`}):\n${indent(o.output)}`);
  return o;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
}

async function versionOf(app: string, name: string): Promise<string> {
  return String((await readJson(join(app, "node_modules", name, "package.json"))).version);
}

/** Every installed copy of a package under an app's node_modules, nested ones included. */
async function copiesOf(app: string, name: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (modules: string): Promise<void> => {
    if (!existsSync(modules)) return;
    for (const entry of await readdir(modules, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
      const dirs = entry.name.startsWith("@") ? (await readdir(join(modules, entry.name))).map((n) => join(entry.name, n)) : [entry.name];
      for (const d of dirs) {
        const dir = join(modules, d);
        if (d === name) found.push(`${relative(app, dir)}@${String((await readJson(join(dir, "package.json"))).version)}`);
        await walk(join(dir, "node_modules"));
      }
    }
  };
  await walk(join(app, "node_modules"));
  return found;
}

/** Files of an installed package, relative to its directory (its own node_modules left out). */
async function filesUnder(dir: string): Promise<Set<string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
  return new Set(files.filter((f) => !f.startsWith(`node_modules${sep}`)));
}

/**
 * What the installed package must hold: every target of `exports` (all conditions), and every file a
 * source map or declaration map names. Returns the problems found.
 */
async function checkContents(pkgDir: string): Promise<string[]> {
  const problems: string[] = [];
  const files = await filesUnder(pkgDir);
  const targets = (value: unknown): string[] =>
    typeof value === "string" ? [value] : value !== null && typeof value === "object" ? Object.values(value).flatMap(targets) : [];
  for (const target of targets((await readJson(join(pkgDir, "package.json"))).exports)) {
    if (!files.has(relative(pkgDir, join(pkgDir, target)))) problems.push(`exports names ${target}, not in the package`);
  }
  for (const file of files) {
    if (!file.endsWith(".map")) continue;
    const map = await readJson(join(pkgDir, file));
    for (const source of (map.sources ?? []) as string[]) {
      const path = relative(pkgDir, resolve(pkgDir, dirname(file), typeof map.sourceRoot === "string" ? map.sourceRoot : "", source));
      if (!files.has(path)) problems.push(`${file} points to ${path}, not in the package`);
    }
  }
  for (const file of files) if (/(^|\/)(test|tests|__tests__)\/|\.test\.[cm]?[jt]s$/.test(file)) problems.push(`a test file is in the package: ${file}`);
  // What a package page and a user's lawyer need: the licence text, where the code lives and where to report.
  if (!files.has("LICENSE")) problems.push("no LICENSE file");
  const pkg = await readJson(join(pkgDir, "package.json"));
  const url = (v: unknown): unknown => (v !== null && typeof v === "object" ? (v as { url?: unknown }).url : v);
  for (const field of ["license", "homepage", "repository", "bugs"]) if (typeof url(pkg[field]) !== "string") problems.push(`package.json has no ${field}`);
  // README links must work on the npm page, where the docs/ folder does not exist: absolute URLs or anchors only.
  const readme = await readFile(join(pkgDir, "README.md"), "utf8");
  for (const m of readme.matchAll(/\]\(([^)\s]+)\)/g)) if (!/^(https?:|#|mailto:)/.test(m[1]!)) problems.push(`README.md links to ${m[1]!}, which does not exist on the npm page`);
  return problems;
}

/** Node 22 from the npm registry, installed once into node_modules/.cache. */
async function node22(): Promise<string> {
  const bin = join(NODE22_DIR, "node_modules", "node", "bin", "node");
  if (existsSync(bin)) {
    const o = await run(bin, ["--version"], ROOT, RUN_TIMEOUT_MS);
    if (ok(o) && o.stdout.startsWith("v22.")) return bin;
  }
  await rm(NODE22_DIR, { recursive: true, force: true });
  await mkdir(NODE22_DIR, { recursive: true });
  // The `node` package's preinstall fetches node-<platform>-<arch> from the registry.
  await writeFile(join(NODE22_DIR, "package.json"), JSON.stringify({ private: true, allowScripts: { node: true } }, null, 2));
  await must("installing node@22", "npm", ["install", "--no-audit", "--no-fund", "--no-save", "node@22"], NODE22_DIR);
  return bin;
}

async function installApp(tmp: string, tarball: string, app: (typeof APPS)[number]): Promise<string> {
  const dir = join(tmp, `app-${app.name}`);
  await mkdir(dir);
  const pkg = { name: `proxyless-package-test-${app.name}`, private: true, type: "module", dependencies: { proxyless: `file:${tarball}`, ...app.dependencies } };
  await writeFile(join(dir, "package.json"), JSON.stringify(pkg, null, 2));
  for (const file of ["program.mjs", "mesh.test.mjs", "backend.mjs"]) await copyFile(join(APP_FILES, file), join(dir, file));
  await copyFile(join(APP_FILES, app.otel), join(dir, "otel.mjs"));
  await must(`npm install in app-${app.name}`, "npm", ["install", "--no-audit", "--no-fund"], dir);
  return dir;
}

interface Row {
  readonly node: string;
  readonly app: string;
  readonly step: string;
  readonly passed: boolean;
  readonly note: string;
}

async function main(): Promise<number> {
  const keep = process.argv.includes("--keep");
  const tmp = await mkdtemp(join(tmpdir(), "proxyless-package-"));
  const rows: Row[] = [];
  const record = (row: Row, output?: string): void => {
    rows.push(row);
    console.log(`${row.passed ? "ok    " : "FAILED"} [node ${row.node}, ${row.app}] ${row.step}${row.note === "" ? "" : `: ${row.note}`}`);
    if (output !== undefined && output.trim() !== "") console.log(indent(output));
  };
  try {
    console.log(`package test in ${tmp}`);
    const [packed, node22Bin] = await Promise.all([must("npm pack", "npm", ["pack", "--json", "--pack-destination", tmp], ROOT), node22()]);
    const info = (JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as { filename: string; size: number; unpackedSize: number; entryCount: number }[])[0];
    if (info === undefined) throw new Error(`npm pack printed no package:\n${indent(packed.output)}`);
    const tarball = join(tmp, info.filename);
    console.log(`packed ${info.filename}: ${info.entryCount} files, ${(info.size / 1024).toFixed(0)} kB (${(info.unpackedSize / 1024).toFixed(0)} kB unpacked)`);

    const nodes = [
      { bin: node22Bin, version: (await must("node 22 --version", node22Bin, ["--version"], tmp)).stdout.trim() },
      { bin: process.execPath, version: process.version },
    ];
    const dirs = await Promise.all(APPS.map((app) => installApp(tmp, tarball, app)));

    const contents = await checkContents(join(dirs[0] ?? "", "node_modules", "proxyless"));
    const shown = contents.slice(0, 5).join("; ") + (contents.length > 5 ? `; and ${contents.length - 5} more` : "");
    record({ node: "-", app: "-", step: "the package holds what its exports and maps name, a LICENSE, its repository and working README links, and no tests", passed: contents.length === 0, note: shown });

    for (const [i, app] of APPS.entries()) {
      const dir = dirs[i] ?? "";
      const names = Object.keys(app.dependencies).filter((n) => n !== "@opentelemetry/api");
      const versions = await Promise.all(names.map(async (n) => `${n}@${await versionOf(dir, n)}`));
      const api = await copiesOf(dir, "@opentelemetry/api");
      record({ node: "-", app: app.name, step: "one copy of @opentelemetry/api, the app's", passed: api.length === 1 && api[0]?.startsWith("node_modules/@opentelemetry/api@") === true, note: `${api.join(", ")}; ${versions.join(", ")}` });
    }

    for (const node of nodes) {
      for (const [i, app] of APPS.entries()) {
        const dir = dirs[i] ?? "";
        const program = await run(node.bin, ["program.mjs"], dir, RUN_TIMEOUT_MS);
        record({ node: node.version, app: app.name, step: "program.mjs", passed: ok(program), note: ok(program) ? `${program.ms.toFixed(0)} ms` : program.signal ?? `exit ${String(program.code)}` }, program.output);
        const test = await run(node.bin, ["--test", "--test-reporter=spec", "mesh.test.mjs"], dir, RUN_TIMEOUT_MS);
        record({ node: node.version, app: app.name, step: "node --test mesh.test.mjs", passed: ok(test), note: ok(test) ? `${test.ms.toFixed(0)} ms` : test.signal ?? `exit ${String(test.code)}` }, test.output);
      }
      // The package's bin, as npx runs it: `proxyless check` on an entry with a regex RE2 refuses exits 1 and names the field.
      const dir = dirs[0] ?? "";
      await writeFile(join(dir, "entries.json"), JSON.stringify({ Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathRegex: "(a" } } }] }));
      const cli = await run(node.bin, [join(dir, "node_modules", ".bin", "proxyless"), "check", "entries.json"], dir, RUN_TIMEOUT_MS);
      const cliOk = cli.code === 1 && cli.stdout.includes("service-router/web at 'Routes[0].Match.HTTP.PathRegex'");
      record({ node: node.version, app: APPS[0]?.name ?? "-", step: "npx proxyless check (the bin)", passed: cliOk, note: cliOk ? `${cli.ms.toFixed(0)} ms` : cli.signal ?? `exit ${String(cli.code)}` }, cliOk ? undefined : cli.output);
    }
  } catch (err) {
    rows.push({ node: "-", app: "-", step: "set-up", passed: false, note: "" });
    console.log(`FAILED set-up: ${err instanceof Error ? err.message : String(err)}`);
  }

  const failed = rows.filter((r) => !r.passed);
  console.log("\nsummary");
  for (const r of rows) console.log(`  ${r.passed ? "ok    " : "FAILED"}  node ${r.node.padEnd(9)} ${r.app.padEnd(6)} ${r.step}${r.note === "" ? "" : ` (${r.note.length > 160 ? `${r.note.slice(0, 157)}...` : r.note})`}`);
  if (failed.length === 0 && !keep) await rm(tmp, { recursive: true, force: true });
  else console.log(`\nthe apps are in ${tmp}`);
  console.log(failed.length === 0 ? `package test passed (${rows.length} checks)` : `package test FAILED: ${failed.length} of ${rows.length} checks`);
  return failed.length === 0 ? 0 : 1;
}

process.exitCode = await main();
