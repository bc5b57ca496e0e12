import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitForPort } from "./backend-process.ts";
import { isBackendMessage, type BackendCommand, type ChaosBackendArgs, type ChaosMode, type ChaosStats } from "./chaos-protocol.ts";

/** V8's code cache for the backends: ten processes load the same modules (grpc-js) on every start. */
const COMPILE_CACHE = join(tmpdir(), "proxyless-bench-chaos-compile-cache");
const COMMAND_TIMEOUT_MS = 10_000;

/** Every child any fleet started and has not seen exit: killed on the way out, whatever happens. */
const live = new Set<ChildProcess>();
let guarded = false;

function guardExit(): void {
  if (guarded) return;
  guarded = true;
  // Synchronous: runs even when the parent exits on an uncaught error.
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      for (const child of live) child.kill("SIGKILL");
      process.exit(130);
    });
  }
}

/** What the backends of a fleet said about POST ids. */
export interface IdTally {
  /** Ids seen by a backend that processed (or may have processed) them, with how many times. */
  readonly processed: Map<string, number>;
  /** Ids seen at all (refused ones included), with how many times. */
  readonly received: Map<string, number>;
}

/** One instance: a child process serving on 127.0.0.1. */
export interface Instance {
  readonly index: number;
  readonly id: string;
  readonly port: number;
  readonly child: ChildProcess;
}

/**
 * Ten (or n) backend processes of one service, with the parent's side of the IPC protocol: modes,
 * stats, kill, and the tally of POST ids they report.
 */
export class Fleet {
  readonly instances: readonly Instance[];
  readonly ids: IdTally = { processed: new Map(), received: new Map() };
  /** `hung` messages received (requests that arrived at a hanging instance). */
  hungArrivals = 0;
  #seq = 0;
  readonly #pending = new Map<number, (stats: ChaosStats) => void>();
  readonly #hungWaiters = new Set<{ readonly count: number; readonly resolve: () => void }>();
  readonly #dying = new Map<number, { readonly stats: ChaosStats; readonly at: number }>();

  private constructor(instances: readonly Instance[]) {
    this.instances = instances;
    for (const inst of instances) inst.child.on("message", (m: unknown) => this.#onMessage(inst, m));
  }

  /**
   * Forks `n` backends of `script` with `args` and waits until each reports its port. On failure,
   * the ones started are killed.
   *
   * @param script - the backend's file
   * @param n - how many instances
   * @param args - the backends' arguments
   */
  static async start(script: string, n: number, args: ChaosBackendArgs): Promise<Fleet> {
    guardExit();
    const children = Array.from({ length: n }, () => {
      const child = fork(script, [JSON.stringify(args)], { stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE } });
      live.add(child);
      child.once("exit", () => live.delete(child));
      return child;
    });
    try {
      const ports = await Promise.all(children.map((c) => waitForPort(c, 20_000)));
      return new Fleet(children.map((child, index) => ({ index, id: `i${index}`, port: ports[index]!, child })));
    } catch (err) {
      await Promise.all(children.map(killChild));
      throw err;
    }
  }

  #onMessage(inst: Instance, message: unknown): void {
    if (!isBackendMessage(message)) return;
    switch (message.type) {
      case "id": {
        const { received, processed } = this.ids;
        received.set(message.id, (received.get(message.id) ?? 0) + 1);
        if (message.processed) processed.set(message.id, (processed.get(message.id) ?? 0) + 1);
        return;
      }
      case "hung":
        this.hungArrivals++;
        for (const w of this.#hungWaiters) {
          if (this.hungArrivals >= w.count) {
            this.#hungWaiters.delete(w);
            w.resolve();
          }
        }
        return;
      case "ack": {
        const resolve = this.#pending.get(message.seq);
        this.#pending.delete(message.seq);
        resolve?.(message.stats);
        return;
      }
      case "dying":
        this.#dying.set(inst.index, { stats: message.stats, at: message.at - performance.timeOrigin });
        return;
      case "ready":
        return;
    }
  }

  #command(inst: Instance, make: (seq: number) => BackendCommand): Promise<ChaosStats> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`instance ${inst.id} did not answer command ${seq} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.#pending.set(seq, (stats) => {
        clearTimeout(timer);
        resolve(stats);
      });
      inst.child.send(make(seq));
    });
  }

  /**
   * Sets an instance's mode; resolves with its stats at the moment it switched.
   *
   * @param index - the instance
   * @param mode - the new mode
   */
  setMode(index: number, mode: ChaosMode): Promise<ChaosStats> {
    return this.#command(this.instances[index]!, (seq) => ({ cmd: "mode", seq, mode }));
  }

  /**
   * The stats of every instance still alive (undefined for a dead one). Every message an instance sent
   * before its answer has been handled when this resolves, the POST ids included.
   */
  stats(): Promise<(ChaosStats | undefined)[]> {
    return Promise.all(this.instances.map((inst) => (alive(inst.child) ? this.#command(inst, (seq) => ({ cmd: "stats", seq })) : Promise.resolve(undefined))));
  }

  /**
   * Tells an instance to SIGKILL itself; resolves once it is dead and its IPC channel is drained, with
   * what it had in flight when it died (undefined if its last message was lost, or if it had to be
   * killed from here because no POST came within 2 s).
   *
   * @param index - the instance
   * @param withPost - die only with a POST in flight (see the `die` command)
   */
  async kill(index: number, withPost: boolean): Promise<{ readonly stats: ChaosStats | undefined; readonly diedAt: number | undefined; readonly signal: string | null; readonly ms: number }> {
    const inst = this.instances[index]!;
    const start = performance.now();
    const exited = once(inst.child, "exit") as Promise<[number | null, string | null]>;
    const drained = inst.child.connected ? once(inst.child, "disconnect") : Promise.resolve();
    inst.child.send({ cmd: "die", withPost } satisfies BackendCommand);
    const fallback = setTimeout(() => inst.child.kill("SIGKILL"), 2000);
    const [[, signal]] = await Promise.all([exited, drained]);
    clearTimeout(fallback);
    const dying = this.#dying.get(index);
    // diedAt: when it died, on this process's performance.now() clock.
    return { stats: dying?.stats, diedAt: dying?.at, signal, ms: performance.now() - start };
  }

  /**
   * What a killed instance said it had in flight when it died (undefined if not killed, or if its last
   * message was lost).
   *
   * @param index - the instance
   */
  killedStats(index: number): ChaosStats | undefined {
    return this.#dying.get(index)?.stats;
  }

  /**
   * Resolves once `count` requests in all have arrived at hanging instances.
   *
   * @param count - how many
   * @param timeoutMs - rejects after this long
   */
  waitHung(count: number, timeoutMs: number): Promise<void> {
    if (this.hungArrivals >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#hungWaiters.delete(waiter);
        reject(new Error(`only ${this.hungArrivals} of ${count} requests reached the hung instances within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#hungWaiters.add(waiter);
    });
  }

  /** Kills every instance (SIGKILL) and waits for them to exit. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.instances.map((i) => killChild(i.child)));
  }
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.connected;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGKILL");
  await exited;
}
