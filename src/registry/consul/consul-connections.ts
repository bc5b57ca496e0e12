import type { AgentOptions as HttpsAgentOptions } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Agent as UndiciAgent, buildConnector, type Dispatcher } from "undici";

/** TLS options of `node:tls` for the agent's connections. @internal */
export type ConsulConnectOptions = Pick<HttpsAgentOptions, "ca" | "cert" | "key" | "servername">;

/**
 * Makes a socket that can never keep the process alive: unref'd, and deaf to the `ref()` that HTTP
 * clients call while a request is pending on it. For watches (blocking queries that are always
 * pending): background work, which must not keep a process from exiting.
 */
function neverHolds(socket: Duplex): void {
  const s = socket as Partial<Socket>;
  if (typeof s.unref !== "function") return;
  s.unref();
  s.ref = () => s as Socket;
}

/**
 * A ConsulRegistry's connections to its agent, each made on first use (and again after `close()`):
 *
 * - `foreground`: for what a caller waits on (registration, deregistration, authorize). Like any
 *   request, a pending one keeps the process alive.
 * - `background`: for watches (blocking queries on instances, config entries, Connect
 *   roots and leaf), whose sockets never keep the process alive, so a process that is done exits even
 *   though its mesh still watches Consul.
 *
 * Both are the registry's own, never undici's global dispatcher, which the app may have replaced (with
 * `mesh.dispatcher`, for instance). @internal
 */
export class ConsulConnections {
  readonly #tls: ConsulConnectOptions;
  #foreground: UndiciAgent | undefined;
  #background: UndiciAgent | undefined;

  /**
   * @param tls - TLS options, for an https URL
   */
  constructor(tls: ConsulConnectOptions) {
    this.#tls = tls;
  }

  /** The pool for requests a caller waits on. */
  get foreground(): Dispatcher {
    return (this.#foreground ??= new UndiciAgent({ connect: this.#tls }));
  }

  /** The pool for blocking queries: its sockets never keep the process alive. */
  get background(): Dispatcher {
    if (this.#background === undefined) {
      const connect = buildConnector(this.#tls);
      this.#background = new UndiciAgent({
        // From the start: a connection that hangs must not hold the process either.
        connect: (options, callback) => {
          const socket: unknown = connect(options, callback);
          if (socket !== null && typeof socket === "object") neverHolds(socket as Duplex);
        },
      });
    }
    return this.#background;
  }

  /**
   * Closes every connection; later use opens new ones. Requests a caller waits on finish first; the
   * watches' blocking queries are cut (nobody waits for their answer, and each may take minutes).
   */
  async close(): Promise<void> {
    const foreground = this.#foreground;
    const background = this.#background;
    this.#foreground = undefined;
    this.#background = undefined;
    await Promise.all([foreground?.close(), background?.destroy()]);
  }
}
