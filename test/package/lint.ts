/**
 * `npm run lint:package` (part of `npm test`): packs the library once (npm pack runs prepack, which builds
 * dist/) into a temporary directory and checks the tarball, as npm would publish it, with publint
 * (warnings are errors) and @arethetypeswrong/cli.
 *
 * attw runs with its esm-only profile: the package is ESM-only with subpath exports, so the two
 * resolution modes that cannot work for it are left out, and only those: `node10` (TypeScript's legacy
 * resolution, which reads no `exports` and so finds no subpath such as proxyless/testing) and
 * `node16-cjs` (a CommonJS importer: `require` resolves to an ES module). Every ESM and bundler
 * resolution must find both the JavaScript and its types.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");

function run(command: string, args: readonly string[], capture = false): string {
  const r = spawnSync(command, args, { cwd: ROOT, stdio: ["ignore", capture ? "pipe" : "inherit", "inherit"], encoding: "utf8" });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0) {
    if (capture) process.stdout.write(r.stdout);
    throw new Error(`${command} ${args.join(" ")} failed (${r.signal ?? `exit ${String(r.status)}`})`);
  }
  return r.stdout;
}

const tmp = mkdtempSync(join(tmpdir(), "proxyless-lint-package-"));
try {
  const packed = run("npm", ["pack", "--json", "--pack-destination", tmp], true);
  const info = (JSON.parse(packed.slice(packed.indexOf("["))) as { filename: string }[])[0];
  if (info === undefined) throw new Error("npm pack printed no package");
  const tarball = join(tmp, info.filename);
  run(join(BIN, "publint"), ["run", "--strict", tarball]);
  run(join(BIN, "attw"), ["--profile", "esm-only", "--format", "table-flipped", tarball]);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
