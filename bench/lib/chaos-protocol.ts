/**
 * The IPC protocol between `bench/chaos.ts` and its backends (`bench/chaos-backend.ts` for HTTP,
 * `bench/grpc-chaos-backend.ts` for gRPC). Both backends speak it the same way.
 */

/**
 * How a backend answers: `ok` (after its service time), `fail` (at once, 503 or UNAVAILABLE), `hang`
 * (accepts and reads the request, never answers), `flap` (alternates periods of `fail` and `ok`,
 * starting with `fail`).
 */
export type ChaosMode = "ok" | "fail" | "hang" | "flap";

/** The header (HTTP) or metadata key (gRPC) that carries a POST's unique id. */
export const REQUEST_ID_HEADER = "x-chaos-request-id";

/** What a backend is started with, as one JSON argument. */
export interface ChaosBackendArgs {
  readonly mode: ChaosMode;
  /** Service time of an `ok` answer, in ms (0: at once). */
  readonly serviceMs: number;
  /** Length of each `fail` and `ok` period in `flap` mode, in ms. */
  readonly flapPeriodMs: number;
}

/** What a backend has seen since it started. */
export interface ChaosStats {
  /** Requests (attempts) that reached it, by method (`GET`/`POST`; gRPC: Get as GET, Create as POST). */
  readonly get: number;
  readonly post: number;
  /** How many of them it answered with a failure (503 / UNAVAILABLE). */
  readonly failed: number;
  /** Requests received and not answered yet (in `hang` mode they stay there). */
  readonly inFlight: number;
  /** How many of those are POSTs. */
  readonly inFlightPost: number;
}

/** Messages from a backend to the parent. */
export type BackendMessage =
  | { readonly type: "ready"; readonly port: number }
  /**
   * A POST (gRPC: Create) arrived with this id, sent the moment it arrives so that a backend killed a
   * moment later has told. `processed` is false when the backend refuses it (503 / UNAVAILABLE in `fail`
   * or a failing `flap` period: nothing done); true when it does the work, or may (`ok`, `hang`).
   */
  | { readonly type: "id"; readonly id: string; readonly processed: boolean }
  /** A request arrived in `hang` mode (so the parent can wait until every connection is busy). */
  | { readonly type: "hung" }
  /** The answer to a command, with the stats at the moment it was carried out. */
  | { readonly type: "ack"; readonly seq: number; readonly stats: ChaosStats }
  /**
   * Sent just before the backend SIGKILLs itself: what it had in flight then, and when (ms since the
   * epoch, `performance.timeOrigin + performance.now()`: the parent converts it to its own clock).
   */
  | { readonly type: "dying"; readonly stats: ChaosStats; readonly at: number };

/** Commands from the parent. */
export type BackendCommand =
  | { readonly cmd: "mode"; readonly seq: number; readonly mode: ChaosMode }
  | { readonly cmd: "stats"; readonly seq: number }
  /**
   * Send `dying` with the stats, then SIGKILL itself at once (no cleanup, no answers). With
   * `withPost`, it dies the moment it has a POST in flight (at once if it has one, else when the next
   * arrives, right after reporting its id), so that the kill always catches a POST it has received.
   */
  | { readonly cmd: "die"; readonly withPost: boolean };

/**
 * Whether an IPC message is a backend's message.
 *
 * @param message - anything received over IPC
 */
export function isBackendMessage(message: unknown): message is BackendMessage {
  if (typeof message !== "object" || message === null) return false;
  const type = (message as { type?: unknown }).type;
  return type === "ready" || type === "id" || type === "hung" || type === "ack" || type === "dying";
}

/**
 * Whether an IPC message is a command from the parent.
 *
 * @param message - anything received over IPC
 */
export function isBackendCommand(message: unknown): message is BackendCommand {
  if (typeof message !== "object" || message === null) return false;
  const cmd = (message as { cmd?: unknown }).cmd;
  return cmd === "mode" || cmd === "stats" || cmd === "die";
}

/**
 * Reads the backend's arguments from `process.argv[2]`.
 *
 * @throws Error when they are missing or malformed
 */
export function readBackendArgs(): ChaosBackendArgs {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error("chaos backend: missing its JSON argument");
  const args = JSON.parse(raw) as Partial<ChaosBackendArgs>;
  const modes: readonly string[] = ["ok", "fail", "hang", "flap"];
  if (typeof args.mode !== "string" || !modes.includes(args.mode) || typeof args.serviceMs !== "number" || typeof args.flapPeriodMs !== "number") {
    throw new Error(`chaos backend: bad argument ${raw}`);
  }
  return { mode: args.mode, serviceMs: args.serviceMs, flapPeriodMs: args.flapPeriodMs };
}

/**
 * The state every backend keeps, whatever it speaks: its mode, its counters, and the IPC side.
 * The server code asks {@link BackendState.arrive} on each request what to do.
 */
export class BackendState {
  #mode: ChaosMode;
  #flapStart = performance.now();
  readonly #flapPeriodMs: number;
  #get = 0;
  #post = 0;
  #failed = 0;
  #inFlight = 0;
  #inFlightPost = 0;
  #dieOnPost = false;

  /** @param args - the backend's arguments */
  constructor(args: ChaosBackendArgs) {
    this.#mode = args.mode;
    this.#flapPeriodMs = args.flapPeriodMs;
  }

  /** The counters now. */
  stats(): ChaosStats {
    return { get: this.#get, post: this.#post, failed: this.#failed, inFlight: this.#inFlight, inFlightPost: this.#inFlightPost };
  }

  /**
   * Counts a request that just arrived, reports a POST's id at once, and says how to answer it. The
   * caller must call {@link BackendState.done} when an `ok` or `hang` request ends (answered or closed).
   *
   * @param post - whether it is a POST (gRPC: Create)
   * @param id - the POST's id, if it carried one
   */
  arrive(post: boolean, id: string | undefined): "ok" | "fail" | "hang" {
    if (post) this.#post++;
    else this.#get++;
    const action = this.#action();
    if (action === "fail") this.#failed++;
    else {
      this.#inFlight++;
      if (post) this.#inFlightPost++;
    }
    if (id !== undefined) send({ type: "id", id, processed: action !== "fail" });
    if (action === "hang") send({ type: "hung" });
    if (this.#dieOnPost && post && action !== "fail") this.#die();
    return action;
  }

  /**
   * An `ok` or `hang` request ended (answered, or its connection closed).
   *
   * @param post - whether it was a POST
   */
  done(post: boolean): void {
    this.#inFlight--;
    if (post) this.#inFlightPost--;
  }

  #die(): never {
    // Written to the pipe synchronously (an IPC pipe with an empty queue is written at once), then
    // killed: nothing else runs in between, so the count is what it had in flight when it died.
    send({ type: "dying", stats: this.stats(), at: performance.timeOrigin + performance.now() });
    process.kill(process.pid, "SIGKILL");
    // SIGKILL cannot be caught; this line is never reached.
    throw new Error("unreachable");
  }

  #action(): "ok" | "fail" | "hang" {
    if (this.#mode !== "flap") return this.#mode;
    const period = Math.floor((performance.now() - this.#flapStart) / this.#flapPeriodMs);
    return period % 2 === 0 ? "fail" : "ok";
  }

  /**
   * Listens for the parent's commands; `onExit` runs when the parent goes away (the IPC channel
   * closes), then the process exits.
   *
   * @param onExit - closes the server
   */
  listen(onExit: () => void): void {
    process.on("message", (message: unknown) => {
      if (!isBackendCommand(message)) return;
      switch (message.cmd) {
        case "mode":
          this.#mode = message.mode;
          this.#flapStart = performance.now();
          send({ type: "ack", seq: message.seq, stats: this.stats() });
          return;
        case "stats":
          send({ type: "ack", seq: message.seq, stats: this.stats() });
          return;
        case "die":
          if (!message.withPost || this.#inFlightPost > 0) this.#die();
          this.#dieOnPost = true;
          return;
      }
    });
    process.on("disconnect", () => {
      onExit();
      process.exit(0);
    });
  }
}

/**
 * Sends a message to the parent, if there is one.
 *
 * @param message - the message
 */
export function send(message: BackendMessage): void {
  process.send?.(message);
}
