import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** A proxy running on loopback in front of the backend, as a sidecar would. */
export interface RunningProxy {
  /** `haproxy` or `nginx`. */
  readonly name: string;
  /** What `-v` says, first line. */
  readonly version: string;
  /** `http://127.0.0.1:<port>`: where clients send. */
  readonly origin: string;
  /** The process that does the proxying (its CPU is the proxy's cost). */
  readonly pid: number;
  stop(): Promise<void>;
}

/** A proxy that could not start, and how to get it. */
export interface MissingProxy {
  readonly name: string;
  readonly reason: string;
}

const START_TIMEOUT_MS = 10_000;

/** A free TCP port on 127.0.0.1 (free when asked; the proxy binds it a moment later). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, "close");
  return port;
}

/** Resolves once something accepts TCP connections on the port. */
async function listening(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with code ${String(child.exitCode)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`did not listen on port ${String(port)} within ${String(START_TIMEOUT_MS)} ms`);
}

/** The first line a command prints for its version flag, or undefined when it is not installed. */
async function versionOf(command: string, flag: string): Promise<string | undefined> {
  try {
    const child = spawn(command, [flag], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const [code] = (await Promise.race([once(child, "exit"), once(child, "error").then(() => [-1])])) as [number | null];
    if (code !== 0) return undefined;
    return out.split("\n")[0]!.trim();
  } catch {
    return undefined;
  }
}

async function run(name: string, version: string, command: string, args: readonly string[], port: number, dir: string): Promise<RunningProxy> {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] });
  try {
    await listening(port, child);
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${name} ${(err as Error).message}`, { cause: err });
  }
  return {
    name,
    version,
    origin: `http://127.0.0.1:${String(port)}`,
    pid: child.pid ?? -1,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * HAProxy in HTTP mode with keep-alive to the backend (`http-reuse always`), one thread, in the
 * foreground, logging nothing.
 *
 * @param backend - `http://127.0.0.1:<port>`
 */
export async function startHaproxy(backend: string): Promise<RunningProxy | MissingProxy> {
  const version = await versionOf("haproxy", "-v");
  if (version === undefined) return { name: "haproxy", reason: "haproxy is not installed (apt-get install -y haproxy)" };
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "bench-haproxy-"));
  const config = join(dir, "haproxy.cfg");
  const target = new URL(backend);
  await writeFile(
    config,
    [
      "global",
      "  nbthread 1",
      "  maxconn 4096",
      "defaults",
      "  mode http",
      "  option http-keep-alive",
      "  timeout connect 5s",
      "  timeout client 120s",
      "  timeout server 120s",
      "frontend sidecar",
      `  bind 127.0.0.1:${String(port)}`,
      "  default_backend app",
      "backend app",
      "  http-reuse always",
      `  server app1 ${target.host} maxconn 1000`,
      "",
    ].join("\n"),
  );
  return run("haproxy", version, "haproxy", ["-db", "-f", config], port, dir);
}

/**
 * nginx as a reverse proxy with an upstream keep-alive pool, one worker and no master process, in the
 * foreground, with no access log.
 *
 * @param backend - `http://127.0.0.1:<port>`
 */
export async function startNginx(backend: string): Promise<RunningProxy | MissingProxy> {
  const version = await versionOf("nginx", "-v");
  if (version === undefined) return { name: "nginx", reason: "nginx is not installed (apt-get install -y nginx)" };
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "bench-nginx-"));
  const config = join(dir, "nginx.conf");
  const target = new URL(backend);
  await writeFile(
    config,
    [
      "daemon off;",
      "master_process off;",
      "worker_processes 1;",
      `pid ${join(dir, "nginx.pid")};`,
      `error_log ${join(dir, "error.log")} error;`,
      "events { worker_connections 4096; }",
      "http {",
      "  access_log off;",
      `  client_body_temp_path ${join(dir, "body")};`,
      `  proxy_temp_path ${join(dir, "proxy")};`,
      `  upstream app { server ${target.host}; keepalive 128; }`,
      "  server {",
      `    listen 127.0.0.1:${String(port)};`,
      "    keepalive_requests 1000000;",
      "    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }",
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  return run("nginx", version, "nginx", ["-c", config, "-p", dir, "-e", join(dir, "error.log")], port, dir);
}

/** Whether a start gave a running proxy. */
export function isRunning(proxy: RunningProxy | MissingProxy): proxy is RunningProxy {
  return "pid" in proxy;
}
