import type { ClientRequestArgs } from "node:http";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import Consul from "consul";
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

/** `node:http`'s agent, with sockets that never hold the process (for the `consul` client's watches). */
class BackgroundHttpAgent extends HttpAgent {
  override createConnection(options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    if (socket !== null && socket !== undefined) neverHolds(socket);
    return socket;
  }
}

/** The same for `node:https`. */
class BackgroundHttpsAgent extends HttpsAgent {
  override createConnection(options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    if (socket !== null && socket !== undefined) neverHolds(socket);
    return socket;
  }
}

/**
 * A ConsulRegistry's connections to its agent, each made on first use (and again after `close()`):
 *
 * - `foreground`: for what a caller waits on (registration, deregistration, authorize). Like any
 *   request, a pending one keeps the process alive.
 * - `background` and `consul`: for watches (blocking queries on instances, config entries, Connect
 *   roots and leaf), whose sockets never keep the process alive, so a process that is done exits even
 *   though its mesh still watches Consul.
 *
 * Both are the registry's own, never undici's global dispatcher, which the app may have replaced (with
 * `mesh.dispatcher`, for instance). @internal
 */
export class ConsulConnections {
  readonly #url: URL;
  readonly #tls: ConsulConnectOptions;
  #foreground: UndiciAgent | undefined;
  #background: UndiciAgent | undefined;
  #consul: { readonly client: Consul; readonly agent: HttpAgent } | undefined;

  /**
   * @param url - the agent's URL
   * @param tls - TLS options, for an https URL
   */
  constructor(url: URL, tls: ConsulConnectOptions) {
    this.#url = url;
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

  /** The `consul` client, for instance watches: over an agent whose sockets never keep the process alive. */
  get consul(): Consul {
    if (this.#consul === undefined) {
      const secure = this.#url.protocol === "https:";
      const agent = secure ? new BackgroundHttpsAgent({ keepAlive: true, ...this.#tls }) : new BackgroundHttpAgent({ keepAlive: true });
      const port = Number(this.#url.port === "" ? (secure ? 443 : 80) : this.#url.port);
      this.#consul = { client: new Consul({ host: this.#url.hostname, port, secure, agent }), agent };
    }
    return this.#consul.client;
  }

  /** Drops the `consul` client's connections (no watch is left). */
  releaseConsul(): void {
    this.#consul?.agent.destroy();
    this.#consul = undefined;
  }

  /**
   * Closes every connection; later use opens new ones. Requests a caller waits on finish first; the
   * watches' blocking queries are cut (nobody waits for their answer, and each may take minutes).
   */
  async close(): Promise<void> {
    this.releaseConsul();
    const foreground = this.#foreground;
    const background = this.#background;
    this.#foreground = undefined;
    this.#background = undefined;
    await Promise.all([foreground?.close(), background?.destroy()]);
  }
}
