import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isMeshError } from "../core/errors.ts";
import { headersFromLines } from "../core/headers.ts";
import { CONSUL_ENTRY_KINDS } from "../config/decode-consul.ts";
import type { RouteExplanation } from "../routing/explain.ts";
import type { MeshSnapshot } from "../telemetry/snapshot.ts";
import { createMesh } from "../mesh.ts";
import { ConsulRegistry } from "../registry/consul/consul-registry.ts";
import { adminJson } from "../admin/admin-json.ts";
import { checkEntries, type SourcedEntry } from "./check-entries.ts";
import { table } from "./table.ts";

/** The exit codes of `proxyless`, as docs/cli.md lists them. */
export const EXIT = {
  /** Done: no problem found, the request explained, the status shown. */
  ok: 0,
  /** `check` found problems; `explain`: the request would fail (the reason is printed). */
  problems: 1,
  /** The command line is wrong (unknown command or option, missing argument). */
  usage: 2,
  /** Consul, the admin server or a file could not be read (or answered what it should not). */
  unreachable: 3,
  /** proxyless itself failed: a bug to report, with the message printed. */
  internal: 4,
} as const;

/** Where the CLI writes, and the environment it reads (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `PROXYLESS_ADMIN_TOKEN`). */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

const HELP = `Usage: proxyless <command> [options]

Commands:
  check FILE...            compile Consul config entries (JSON files) as the mesh would, and report every problem
  check --consul URL       the same for the entries Consul holds now
  explain --consul URL SERVICE METHOD PATH [-H name:value]...
                           where this request would go against the live config, and why
  status ADMIN_URL         the snapshot of a running service (its admin server) as a table

Options:
  --consul URL   Consul's HTTP address (default: $CONSUL_HTTP_ADDR)
  --token TOKEN  Consul's ACL token (default: $CONSUL_HTTP_TOKEN); for status, the admin server's bearer
                 token (default: $PROXYLESS_ADMIN_TOKEN)
  --json         print JSON instead of text
  -h, --help     this help; proxyless <command> --help for one command
  --version      the version

Exit codes: 0 done, 1 problems found (check) or the request would fail (explain), 2 usage error,
3 Consul, the admin server or a file could not be read, 4 proxyless itself failed.
`;

const COMMAND_HELP: Readonly<Record<string, string>> = {
  check: `Usage: proxyless check FILE... | --consul URL [--token TOKEN] [--json]

Compiles service-router, service-splitter, service-resolver, service-defaults and service-intentions
entries exactly as the mesh would, checks every service's discovery chain across them, and reports
each problem with its entry and field. A file holds one entry or a list of entries, as JSON (as
\`consul config read -format json\` writes them). Exit 0: none; 1: problems; 2: usage; 3: unreadable.
`,
  explain: `Usage: proxyless explain --consul URL [--token TOKEN] [--json] SERVICE METHOD PATH [-H name:value]...

Routes the request described against the config Consul holds now, without sending it: the route that
matches, the split, redirects and failover, the path sent, header changes, the balancer and the
endpoints it would pick from. Exit 0: routed; 1: the request would fail (the reason is printed);
2: usage; 3: Consul unreachable.
`,
  status: `Usage: proxyless status ADMIN_URL [--token TOKEN] [--json]

Reads a running service's admin server (proxyless/admin, startAdmin) and prints its snapshot: per
upstream service its endpoints, their health, ejection, requests in flight and latency estimate, and
its breaker. Exit 0: shown; 2: usage; 3: the admin server could not be read.
`,
};

class UsageError extends Error {}
class UnreachableError extends Error {}

/**
 * Runs `proxyless` with `args` (without the node and script names).
 *
 * @returns the exit code ({@link EXIT})
 */
export async function runCli(args: readonly string[], io: CliIo, version: string): Promise<number> {
  try {
    const parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        consul: { type: "string" },
        token: { type: "string" },
        json: { type: "boolean" },
        header: { type: "string", short: "H", multiple: true },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
    const [command, ...rest] = parsed.positionals;
    const options = parsed.values;
    if (options.version === true) {
      io.out(`${version}\n`);
      return EXIT.ok;
    }
    if (command === "help") {
      const help = rest[0] === undefined ? HELP : COMMAND_HELP[rest[0]];
      if (help === undefined) throw new UsageError(`unknown command '${rest[0] ?? ""}'`);
      io.out(help);
      return EXIT.ok;
    }
    if (command === undefined) {
      (options.help === true ? io.out : io.err)(HELP);
      return options.help === true ? EXIT.ok : EXIT.usage;
    }
    if (options.help === true) {
      const help = COMMAND_HELP[command];
      if (help === undefined) throw new UsageError(`unknown command '${command}'`);
      io.out(help);
      return EXIT.ok;
    }
    switch (command) {
      case "check":
        return await check(rest, options, io);
      case "explain":
        return await explain(rest, options, io);
      case "status":
        return await status(rest, options, io);
      default:
        throw new UsageError(`unknown command '${command}' (commands: check, explain, status)`);
    }
  } catch (err) {
    if (err instanceof UnreachableError) {
      io.err(`proxyless: ${err.message}\n`);
      return EXIT.unreachable;
    }
    const usage = err instanceof UsageError || (err as { code?: unknown }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" || String((err as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS");
    if (usage) {
      io.err(`proxyless: ${(err as Error).message}\nRun 'proxyless --help' for usage.\n`);
      return EXIT.usage;
    }
    io.err(`proxyless: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.internal;
  }
}

interface Options {
  readonly consul?: string | undefined;
  readonly token?: string | undefined;
  readonly json?: boolean | undefined;
  readonly header?: string[] | undefined;
}

async function check(files: readonly string[], options: Options, io: CliIo): Promise<number> {
  if (options.header !== undefined) throw new UsageError("check takes no -H");
  const consul = options.consul;
  if (files.length > 0 && consul !== undefined) throw new UsageError("check takes files or --consul, not both");
  let entries: SourcedEntry[];
  let filtered: readonly string[] = [];
  if (files.length > 0) entries = (await Promise.all(files.map(readEntries))).flat();
  else {
    const url = consul ?? io.env.CONSUL_HTTP_ADDR;
    if (url === undefined) throw new UsageError("check needs FILE... or --consul URL");
    const read = await consulEntries(consulUrl(url), tokenOf(options.token ?? io.env.CONSUL_HTTP_TOKEN));
    entries = read.entries;
    filtered = read.filtered;
  }
  const problems = [...checkEntries(entries), ...filtered.map((kind) => ({ source: "consul", entry: kind, field: "", message: "Consul left out entries this token may not read (X-Consul-Results-Filtered-By-ACLs): check them with a token that reads every service's config" }))];
  if (options.json === true) io.out(`${JSON.stringify({ entries: entries.length, problems }, null, 2)}\n`);
  else {
    for (const p of problems) io.out(`${p.source}: ${p.entry}${p.field === "" ? "" : ` at '${p.field}'`}: ${p.message}\n`);
    const counted = `${String(entries.length)} ${entries.length === 1 ? "entry" : "entries"}`;
    io.out(problems.length === 0 ? `ok: ${counted} compile${entries.length === 0 ? " (there were none to check)" : ""}\n` : `${String(problems.length)} problem${problems.length === 1 ? "" : "s"} in ${counted}\n`);
  }
  return problems.length === 0 ? EXIT.ok : EXIT.problems;
}

/** A file's entries: one entry, or a list of them. */
async function readEntries(file: string): Promise<SourcedEntry[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UnreachableError(`cannot read ${file}: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UnreachableError(`${file} is not JSON (${(err as Error).message}); write entries as JSON, as 'consul config read -format json' prints them`);
  }
  return Array.isArray(json) ? json.map((entry, i) => ({ source: `${file}[${String(i)}]`, entry: entry as unknown })) : [{ source: file, entry: json }];
}

function consulUrl(raw: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`;
  // Never echoed with its credentials.
  const shown = JSON.stringify(withScheme.replace(/\/\/[^/@]*@/, "//<credentials>@").slice(0, 200));
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`--consul takes Consul's HTTP address, such as http://127.0.0.1:8500; got ${shown}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--consul takes an http:// or https:// address; got ${shown}`);
  if (url.username !== "" || url.password !== "") throw new UsageError("--consul takes no credentials in the URL: give the ACL token with --token or CONSUL_HTTP_TOKEN");
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "") throw new UsageError(`--consul takes Consul's address without a path or query (the API is at /v1/...); got ${shown}`);
  return url.origin;
}

function tokenOf(token: string | undefined): string | undefined {
  return token === undefined || token === "" ? undefined : token;
}

/** Why a fetch failed, in a few words: the system's code (ECONNREFUSED...) or a timeout. */
function whyFailed(err: unknown): string {
  if ((err as { name?: unknown }).name === "TimeoutError") return "timed out after 10 s";
  const cause = (err as { cause?: { code?: unknown; errors?: readonly { code?: unknown }[] } }).cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  return typeof code === "string" ? code : "no connection";
}

/** Every config entry Consul holds, of the kinds the mesh reads, and its intentions; and the kinds ACLs filtered. */
async function consulEntries(base: string, token: string | undefined): Promise<{ readonly entries: SourcedEntry[]; readonly filtered: string[] }> {
  const kinds = [...CONSUL_ENTRY_KINDS, "service-intentions"];
  const answers = await Promise.all(kinds.map((kind) => consulGet(`${base}/v1/config/${kind}`, token, kind === "service-intentions")));
  const entries: SourcedEntry[] = [];
  const filtered: string[] = [];
  for (const [i, answer] of answers.entries()) {
    const kind = kinds[i] ?? "";
    if (!Array.isArray(answer.json)) throw new UnreachableError(`${base} answered ${kind} with something other than a list of config entries: is it Consul's HTTP address?`);
    if (answer.filtered) filtered.push(kind);
    for (const entry of answer.json as unknown[]) entries.push({ source: `consul ${kind}`, entry });
  }
  return { entries, filtered };
}

/**
 * A GET to Consul's API, as JSON.
 *
 * @param missingIsEmpty - a 404 is an empty list (an older Consul without the kind)
 */
async function consulGet(url: string, token: string | undefined, missingIsEmpty = false): Promise<{ readonly json: unknown; readonly filtered: boolean }> {
  const origin = new URL(url).origin;
  const path = new URL(url).pathname;
  try {
    const res = await fetch(url, { headers: token === undefined ? {} : { "x-consul-token": token }, signal: AbortSignal.timeout(10_000) });
    if (res.status === 403) throw new UnreachableError(`Consul refused ${path} (403): give a token with read access to config entries (--token or CONSUL_HTTP_TOKEN)`);
    if (res.status === 404 && missingIsEmpty) return { json: [], filtered: false };
    if (!res.ok) throw new UnreachableError(`${origin} answered ${String(res.status)} for ${path}: is it Consul's HTTP address?`);
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      if ((err as { name?: unknown }).name === "TimeoutError") throw err;
      throw new UnreachableError(`${origin} answered ${path} with something other than JSON: is it Consul's HTTP address?`);
    }
    return { json, filtered: res.headers.get("x-consul-results-filtered-by-acls") === "true" };
  } catch (err) {
    if (err instanceof UnreachableError) throw err;
    throw new UnreachableError(`cannot reach Consul at ${origin} (${whyFailed(err)})`);
  }
}

async function explain(positionals: readonly string[], options: Options, io: CliIo): Promise<number> {
  const [service, method, path, ...extra] = positionals;
  if (service === undefined || method === undefined || path === undefined || extra.length > 0) throw new UsageError("explain takes SERVICE METHOD PATH, such as: explain --consul http://127.0.0.1:8500 orders GET /v1/orders");
  const url = options.consul ?? io.env.CONSUL_HTTP_ADDR;
  if (url === undefined) throw new UsageError("explain needs --consul URL (or CONSUL_HTTP_ADDR)");
  const parsed = headersFromLines(options.header ?? []);
  if ("bad" in parsed) throw new UsageError(`-H takes name:value, got ${JSON.stringify(parsed.bad.slice(0, 100))}`);
  const headers = parsed.headers;
  const base = consulUrl(url);
  // Reach Consul first: a mesh would wait out its discovery timeout instead of saying it cannot.
  const token = tokenOf(options.token ?? io.env.CONSUL_HTTP_TOKEN);
  await consulGet(`${base}/v1/config/service-defaults`, token);
  const mesh = createMesh({ registry: new ConsulRegistry({ url: base, token }), discoveryTimeout: 5000 });
  try {
    let why: RouteExplanation;
    try {
      why = await mesh.explain(service, { method: method.toUpperCase(), path, headers });
    } catch (err) {
      if (isMeshError(err)) throw new UsageError(err.message);
      throw err;
    }
    // Header values a route sets under a credential's name are redacted, as the admin server does: output lands in CI logs.
    if (options.json === true) io.out(`${adminJson(why)}\n`);
    else io.out(describeExplanation(why));
    return why.error === undefined ? EXIT.ok : EXIT.problems;
  } finally {
    await mesh.destroy();
  }
}

function describeExplanation(why: RouteExplanation): string {
  const lines = [`${why.request.method} ${why.service}${why.request.path}`];
  lines.push(why.route === undefined ? "  route: the default (no route matched)" : `  route: #${String(why.route.index)} ${JSON.stringify(why.route.match ?? {})}`);
  for (const split of why.splits) lines.push(`  split: ${split.splitter} #${String(split.index)} (weight ${String(split.weight)})`);
  for (const redirect of why.redirects) lines.push(`  redirected from: ${target(redirect)}`);
  if (why.target !== undefined) lines.push(`  target: ${target(why.target)}`);
  for (const skip of why.skipped) lines.push(`  skipped: ${target(skip.target)}: ${skip.reason}`);
  if (why.endpointsFrom !== undefined && why.target !== undefined && target(why.endpointsFrom) !== target(why.target)) lines.push(`  endpoints from (failover): ${target(why.endpointsFrom)}`);
  if (why.path !== why.request.path) lines.push(`  path sent: ${why.path}`);
  for (const [which, changes] of [["request", why.requestHeaders], ["response", why.responseHeaders]] as const) {
    for (const c of changes) {
      const parts = [...Object.keys(c.set ?? {}).map((h) => `set ${h}`), ...Object.keys(c.add ?? {}).map((h) => `add ${h}`), ...(c.remove ?? []).map((h) => `remove ${h}`)];
      if (parts.length > 0) lines.push(`  ${which} headers: ${parts.join(", ")}`);
    }
  }
  if (why.balancer !== undefined) lines.push(`  balancer: ${why.balancer}`);
  lines.push(`  endpoints: ${why.candidates.length === 0 ? "none" : why.candidates.map((c) => `${c.id} ${c.address}:${String(c.port)} (${c.health}, weight ${String(c.weight)})`).join(", ")}`);
  if (why.error !== undefined) lines.push(`  fails: ${why.error.code}: ${why.error.message}`);
  return `${lines.join("\n")}\n`;
}

function target(t: { readonly service: string; readonly subset: string | undefined }): string {
  return t.subset === undefined ? t.service : `${t.service} (subset ${t.subset})`;
}

async function status(positionals: readonly string[], options: Options, io: CliIo): Promise<number> {
  const [admin, ...extra] = positionals;
  if (admin === undefined || extra.length > 0 || options.consul !== undefined || options.header !== undefined) throw new UsageError("status takes the admin server's URL, such as: status http://127.0.0.1:9901");
  let base: URL;
  try {
    base = new URL(/^[a-z]+:\/\//i.test(admin) ? admin : `http://${admin}`);
  } catch {
    throw new UsageError(`status takes the admin server's URL, such as http://127.0.0.1:9901; got ${JSON.stringify(admin.slice(0, 200))}`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new UsageError("status takes the admin server's http:// URL, such as http://127.0.0.1:9901");
  if (base.username !== "" || base.password !== "") throw new UsageError("status takes no credentials in the URL: give the admin token with --token or PROXYLESS_ADMIN_TOKEN");
  const token = tokenOf(options.token ?? io.env.PROXYLESS_ADMIN_TOKEN);
  // Under the URL's path, for an admin server behind a proxy at a prefix.
  const url = new URL(`${base.pathname.replace(/\/$/, "")}/api/snapshot`, base.origin);
  let snapshot: MeshSnapshot;
  try {
    const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    if (res.status === 401) throw new UnreachableError("the admin server wants its token: --token or PROXYLESS_ADMIN_TOKEN");
    if (!res.ok) throw new UnreachableError(`${base.origin} answered ${String(res.status)} for ${url.pathname}: is it a proxyless admin server (startAdmin)?`);
    const json: unknown = await res.json().catch((err: unknown) => {
      if ((err as { name?: unknown }).name === "TimeoutError") throw err;
      return undefined;
    });
    if (json === null || typeof json !== "object" || !Array.isArray((json as { services?: unknown }).services)) throw new UnreachableError(`${base.origin} answered ${url.pathname} with something other than a mesh snapshot: is it a proxyless admin server (startAdmin)?`);
    snapshot = json as MeshSnapshot;
  } catch (err) {
    if (err instanceof UnreachableError) throw err;
    throw new UnreachableError(`cannot reach the admin server at ${base.origin} (${whyFailed(err)})`);
  }
  if (options.json === true) {
    io.out(`${JSON.stringify(snapshot, null, 2)}\n`);
    return EXIT.ok;
  }
  io.out(`${snapshot.service ?? "(no service name)"} · ${snapshot.registry} · ${snapshot.takenAt}\n`);
  for (const service of snapshot.services) {
    io.out(`\n${service.name}  ${service.status}, ${service.policy}${service.panic ? ", PANIC" : ""}, breaker ${service.breaker ?? "none"}, config v${String(service.config.version)} (${service.config.source})\n`);
    io.out(table(["endpoint", "address", "health", "state", "in flight", "latency ms"], service.endpoints.map(endpointRow)));
  }
  return EXIT.ok;
}

function endpointRow(e: MeshSnapshot["services"][number]["endpoints"][number]): string[] {
  const state = e.ejected ? `ejected${e.ejectedForMs === null ? "" : ` for ${String(Math.ceil(e.ejectedForMs / 1000))} s`}` : e.inRotation ? "in rotation" : "out of rotation";
  return [e.id, `${e.address}:${String(e.port)}`, e.health, state, String(e.pending), e.rttMs === null ? "-" : e.rttMs.toFixed(2)];
}
