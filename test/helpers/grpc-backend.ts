import { EventEmitter } from "node:events";
import { fileURLToPath } from "node:url";
import { loadPackageDefinition, Server, ServerCredentials, status, type GrpcObject, Metadata, type ServerUnaryCall, type sendUnaryData, type ServerWritableStream, type ServerReadableStream, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import type { EndpointInput } from "proxyless";

const PROTO = fileURLToPath(new URL("../fixtures/grpc/orders.proto", import.meta.url));

/** The `orders.Orders` client class and service definition, loaded with proto-loader. */
export const proto = ((): { Orders: ServiceClientConstructor } => {
  const definition = loadSync(PROTO, { keepCase: false, defaults: true });
  return (loadPackageDefinition(definition).orders as GrpcObject) as unknown as { Orders: ServiceClientConstructor };
})();

/** What a test's client sees in an answer. */
export interface Order {
  id: string;
  servedBy: string;
  traceparent: string;
  deadlineMs: number;
  /** The caller's certificate's URI SAN (mTLS). */
  caller: string;
  /** The serial number of the caller's certificate (mTLS). */
  callerSerial: string;
  canary: string;
  items: number;
}

/** How a backend answers; tests change it between calls. */
export interface Behaviour {
  /** Fail every call with this status. */
  fail?: status;
  /** Trailers sent with that failure. */
  failTrailers?: Record<string, string>;
  /** Never answer: wait until the caller gives up (cancel or deadline). */
  hang?: boolean;
  /** Answer after this many ms (a slow instance). */
  delayMs?: number;
}

/** One `orders.Orders` server on 127.0.0.1, port 0, counting its calls. */
export class GrpcBackend {
  readonly name: string;
  readonly server: Server;
  readonly port: number;
  /** Calls received, by method name. */
  readonly calls: Record<string, number> = {};
  /** Metadata of every call received. */
  readonly seen: Metadata[] = [];
  behaviour: Behaviour = {};
  readonly #hanging = new Set<() => void>();
  /** Emits `call` (the method name) as each call arrives. */
  readonly events = new EventEmitter<{ call: [string] }>();

  private constructor(name: string, server: Server, port: number) {
    this.name = name;
    this.server = server;
    this.port = port;
  }

  static async start(name: string, credentials: ServerCredentials = ServerCredentials.createInsecure()): Promise<GrpcBackend> {
    const server = new Server();
    const holder: { backend?: GrpcBackend } = {};
    const self = (): GrpcBackend => holder.backend ?? assertNever();
    server.addService(proto.Orders.service, {
      get: (call: ServerUnaryCall<{ id: string }, Order>, callback: sendUnaryData<Order>) => self().unary("get", call, call.request.id, callback),
      create: (call: ServerUnaryCall<{ item: string }, Order>, callback: sendUnaryData<Order>) => self().unary("create", call, call.request.item, callback),
      watch: (call: ServerWritableStream<{ id: string }, Order>) => {
        const b = self();
        b.count("watch", call.metadata);
        if (b.behaviour.fail !== undefined) {
          call.emit("error", { code: b.behaviour.fail, details: `${b.name} fails` });
          return;
        }
        for (let i = 0; i < 3; i++) void call.write(b.order(call, `${call.request.id}-${i}`));
        call.end();
      },
      upload: (call: ServerReadableStream<{ item: string }, Order>, callback: sendUnaryData<Order>) => {
        const b = self();
        b.count("upload", call.metadata);
        let items = 0;
        call.on("data", () => items++);
        call.on("end", () => callback(null, { ...b.order(call, "upload"), items }));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", credentials, (err, p) => (err === null ? resolve(p) : reject(err))));
    const backend = new GrpcBackend(name, server, port);
    holder.backend = backend;
    return backend;
  }

  /** This backend as a registry endpoint. */
  endpoint(extra: Partial<EndpointInput> = {}): EndpointInput {
    return { id: this.name, address: "127.0.0.1", port: this.port, ...extra };
  }

  private count(method: string, metadata: Metadata): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
    this.seen.push(metadata);
    this.events.emit("call", method);
  }

  private order(call: { metadata: Metadata; getDeadline(): Date | number; getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string; serialNumber: string } } }, id: string): Order {
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? deadline - Date.now() : -1;
    const text = (key: string): string => String(call.metadata.get(key)[0] ?? "");
    const peer = call.getAuthContext().sslPeerCertificate;
    return { id, servedBy: this.name, traceparent: text("traceparent"), deadlineMs: Math.round(ms), caller: peer?.subjectaltname?.replace(/^URI:/, "") ?? "", callerSerial: peer?.serialNumber ?? "", canary: text("x-canary"), items: 0 };
  }

  private unary(method: string, call: ServerUnaryCall<unknown, Order>, id: string, callback: sendUnaryData<Order>): void {
    this.count(method, call.metadata);
    if (this.behaviour.hang === true) {
      const answer = (): void => {
        this.#hanging.delete(answer);
        callback(null, this.order(call, id));
      };
      this.#hanging.add(answer);
      call.on("cancelled", () => this.#hanging.delete(answer));
      return;
    }
    if (this.behaviour.fail !== undefined) {
      const metadata = new Metadata();
      for (const [key, value] of Object.entries(this.behaviour.failTrailers ?? {})) metadata.set(key, value);
      callback({ code: this.behaviour.fail, details: `${this.name} fails`, metadata });
      return;
    }
    const delay = this.behaviour.delayMs;
    if (delay !== undefined) {
      setTimeout(() => callback(null, this.order(call, id)), delay);
      return;
    }
    callback(null, this.order(call, id));
  }

  /** Answers the calls left hanging. */
  release(): void {
    for (const answer of [...this.#hanging]) answer();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

/** Starts `n` backends named `<prefix>-<i>`. */
export function startGrpcBackends(n: number, prefix: string, credentials?: ServerCredentials): Promise<GrpcBackend[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => GrpcBackend.start(`${prefix}-${i}`, credentials)));
}

/** A unary call as a promise. */
export function unary(client: unknown, method: string, request: object, options: { metadata?: Metadata; deadline?: Date | number } = {}): Promise<Order> {
  const fn = (client as Record<string, (...args: unknown[]) => unknown>)[method] as (...args: unknown[]) => unknown;
  return new Promise<Order>((resolve, reject) => {
    const callback = (err: Error | null, res?: Order): void => (err === null ? resolve(res as Order) : reject(err));
    const callOptions = options.deadline === undefined ? {} : { deadline: options.deadline };
    if (options.metadata === undefined) fn.call(client, request, callOptions, callback);
    else fn.call(client, request, options.metadata, callOptions, callback);
  });
}

function assertNever(): never {
  throw new Error("a call arrived before the backend was made");
}
