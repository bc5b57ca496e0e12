import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { isBackendReady } from "./backend-protocol.ts";

const SCRIPT = fileURLToPath(new URL("../overhead-backend.ts", import.meta.url));
const START_TIMEOUT_MS = 10_000;

/** A backend server running in a child process. */
export interface BackendProcess {
  /** The child's process id. */
  readonly pid: number;
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** Stops the child and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Forks `bench/overhead-backend.ts` and waits until it reports its port over IPC.
 *
 * @throws Error when the child exits or stays silent for 10 s before it listens
 */
export async function startBackendProcess(): Promise<BackendProcess> {
  const child = fork(SCRIPT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const port = await waitForPort(child);
    return { pid: child.pid ?? -1, origin: `http://127.0.0.1:${port}`, stop: () => stopChild(child) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

/** The port a backend child process reports (`{ type: "ready", port }` over IPC), or why it never did. */
export function waitForPort(child: ChildProcess, timeoutMs = START_TIMEOUT_MS): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`a backend did not report its port within ${String(timeoutMs)} ms`)), timeoutMs);
    const onMessage = (message: unknown): void => {
      if (!isBackendReady(message)) return;
      cleanup();
      resolve(message.port);
    };
    const onExit = (code: number | null): void => fail(new Error(`the backend exited before listening (code ${String(code)})`));
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      child.off("error", fail);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
    child.on("error", fail);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
}
