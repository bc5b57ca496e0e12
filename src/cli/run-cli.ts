import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isMeshError } from "../core/errors.ts";
import { CONSUL_ENTRY_KINDS } from "../config/decode-consul.ts";
import type { RouteExplanation } from "../routing/explain.ts";
import type { MeshSnapshot } from "../telemetry/snapshot.ts";
import { createMesh } from "../mesh.ts";
import { ConsulRegistry } from "../registry/consul/consul-registry.ts";
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
  /** Consul, the admin server or a file could not be read. */
  unreachable: 3,
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
3 Consul, the admin server or a file could not be read.
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
    throw err;
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
  if (files.length > 0) entries = (await Promise.all(files.map(readEntries))).flat();
  else {
    const url = consul ?? io.env.CONSUL_HTTP_ADDR;
    if (url === undefined) throw new UsageError("check needs FILE... or --consul URL");
    entries = await consulEntries(consulUrl(url), options.token ?? io.env.CONSUL_HTTP_TOKEN);
  }
  const problems = checkEntries(entries);
  if (options.json === true) io.out(`${JSON.stringify({ entries: entries.length, problems }, null, 2)}\n`);
  else {
    for (const p of problems) io.out(`${p.source}: ${p.entry}${p.field === "" ? "" : ` at '${p.field}'`}: ${p.message}\n`);
    io.out(problems.length === 0 ? `ok: ${String(entries.length)} entries compile\n` : `${String(problems.length)} problem${problems.length === 1 ? "" : "s"} in ${String(entries.length)} entries\n`);
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
  try {
    const url = new URL(withScheme);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(url.protocol);
    return url.origin;
  } catch {
    throw new UsageError(`--consul takes Consul's HTTP address, such as http://127.0.0.1:8500; got ${JSON.stringify(raw.slice(0, 200))}`);
  }
}

/** Every config entry Consul holds, of the kinds the mesh reads, and its intentions. */
async function consulEntries(base: string, token: string | undefined): Promise<SourcedEntry[]> {
  const kinds = [...CONSUL_ENTRY_KINDS, "service-intentions"];
  const lists = await Promise.all(kinds.map((kind) => consulGet(`${base}/v1/config/${kind}`, token)));
  return lists.flatMap((list, i) => (Array.isArray(list) ? list : []).map((entry: unknown) => ({ source: `consul ${kinds[i] ?? ""}`, entry })));
}

async function consulGet(url: string, token: string | undefined): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: token === undefined ? {} : { "x-consul-token": token }, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new UnreachableError(`cannot reach Consul at ${new URL(url).origin}${cause === undefined ? "" : ` (${cause})`}`);
  }
  if (res.status === 403) throw new UnreachableError(`Consul refused ${new URL(url).pathname} (403): give a token with read access to config entries (--token or CONSUL_HTTP_TOKEN)`);
  if (res.status === 404) return [];
  if (!res.ok) throw new UnreachableError(`Consul answered ${String(res.status)} for ${new URL(url).pathname}`);
  return (await res.json());
}

async function explain(positionals: readonly string[], options: Options, io: CliIo): Promise<number> {
  const [service, method, path, ...extra] = positionals;
  if (service === undefined || method === undefined || path === undefined || extra.length > 0) throw new UsageError("explain takes SERVICE METHOD PATH, such as: explain --consul http://127.0.0.1:8500 orders GET /v1/orders");
  const url = options.consul ?? io.env.CONSUL_HTTP_ADDR;
  if (url === undefined) throw new UsageError("explain needs --consul URL (or CONSUL_HTTP_ADDR)");
  const headers: Record<string, string> = {};
  for (const header of options.header ?? []) {
    const colon = header.indexOf(":");
    if (colon <= 0) throw new UsageError(`-H takes name:value, got ${JSON.stringify(header.slice(0, 100))}`);
    headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
  }
  const base = consulUrl(url);
  // Reach Consul first: a mesh would wait out its discovery timeout instead of saying it cannot.
  await consulGet(`${base}/v1/config/service-defaults`, options.token ?? io.env.CONSUL_HTTP_TOKEN);
  const mesh = createMesh({ registry: new ConsulRegistry({ url: base, token: options.token ?? io.env.CONSUL_HTTP_TOKEN }), discoveryTimeout: 5000 });
  try {
    let why: RouteExplanation;
    try {
      why = await mesh.explain(service, { method: method.toUpperCase(), path, headers });
    } catch (err) {
      if (isMeshError(err)) throw new UsageError(err.message);
      throw err;
    }
    if (options.json === true) io.out(`${JSON.stringify(why, null, 2)}\n`);
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
  const token = options.token ?? io.env.PROXYLESS_ADMIN_TOKEN;
  let res: Response;
  try {
    res = await fetch(new URL("/api/snapshot", base), { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new UnreachableError(`cannot reach the admin server at ${base.origin}${cause === undefined ? "" : ` (${cause})`}`);
  }
  if (res.status === 401) throw new UnreachableError("the admin server wants its token: --token or PROXYLESS_ADMIN_TOKEN");
  if (!res.ok) throw new UnreachableError(`the admin server answered ${String(res.status)}`);
  const snapshot = (await res.json()) as MeshSnapshot;
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
