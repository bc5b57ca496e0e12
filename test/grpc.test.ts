import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { credentials, Metadata, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { createMesh, withIncomingDeadline, type Mesh } from "proxyless";
import { grpcMesh, ERROR_CODE_KEY, type GrpcMesh } from "proxyless/grpc";
import { MockRegistry } from "proxyless/testing";
import { proto, startGrpcBackends, unary, type GrpcBackend, type Order } from "./helpers/grpc-backend.ts";

/** A loopback port nobody listens on (a server bound it, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/** Every message of a server-streaming `watch` call, once it ends. */
function watchAll(client: Client): Promise<Order[]> {
  return new Promise<Order[]>((resolve, reject) => {
    const out: Order[] = [];
    const stream = (client as unknown as { watch(req: object): NodeJS.EventEmitter }).watch({ id: "w" });
    stream.on("data", (o: Order) => out.push(o));
    stream.on("end", () => resolve(out));
    stream.on("error", reject);
  });
}

const isServiceError = (err: unknown): err is ServiceError => err instanceof Error && typeof (err as { code?: unknown }).code === "number";

describe("gRPC through the mesh", () => {
  let backends: GrpcBackend[];
  let registry: MockRegistry;
  let mesh: Mesh;
  let grpc: GrpcMesh;
  let clients: Client[];

  before(async () => {
    backends = await startGrpcBackends(3, "orders");
  });
  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
  });
  beforeEach(() => {
    registry = new MockRegistry();
    registry.setEndpoints("orders", backends.map((b, i) => b.endpoint({ meta: { version: i === 2 ? "v2" : "v1" } })));
    clients = [];
    for (const b of backends) {
      b.behaviour = {};
      for (const key of Object.keys(b.calls)) b.calls[key] = 0;
      b.seen.length = 0;
    }
  });
  afterEach(async () => {
    for (const c of clients) c.close();
    grpc.close();
    await mesh.close();
  });

  const start = (options: Partial<Parameters<typeof createMesh>[0]> = {}): Client => {
    mesh = createMesh({ registry, ...options });
    grpc = grpcMesh(mesh);
    const client = grpc.client(proto.Orders, "orders");
    clients.push(client);
    return client;
  };
  const served = (orders: readonly Order[]): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const o of orders) out[o.servedBy] = (out[o.servedBy] ?? 0) + 1;
    return out;
  };

  it("discovers the service and balances unary calls over its instances (round robin: exact counts)", async () => {
    const client = start();
    const orders: Order[] = [];
    for (let i = 0; i < 30; i++) orders.push(await unary(client, "get", { id: String(i) }));
    assert.deepEqual(served(orders), { "orders-0": 10, "orders-1": 10, "orders-2": 10 });
    assert.equal(orders[7]?.id, "7");
    assert.equal(grpc.attemptsInFlight, 0, "no attempt left registered");
    // The pick key never leaves the process.
    assert.ok(backends.every((b) => b.seen.every((m) => m.get("x-proxyless-pick").length === 0)));
  });

  it("ring_hash from the service config: one metadata key always reaches the same instance", async () => {
    registry.setConfig("orders", { loadBalancer: { policy: "ring_hash", config: { hashPolicies: [{ field: "header", name: "x-user" }] } } });
    const client = start();
    for (const user of ["ann", "bob", "cyd", "dee"]) {
      const md = new Metadata();
      md.set("x-user", user);
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add((await unary(client, "get", { id: user }, { metadata: md })).servedBy);
      assert.equal(seen.size, 1, `${user} stuck to one instance`);
    }
  });

  it("least_request sends new calls away from an instance with calls in flight", async () => {
    registry.setConfig("orders", { loadBalancer: { policy: "least_request" } });
    const client = start();
    backends[0]!.behaviour = { hang: true };
    // Calls one at a time until one hangs on orders-0 (the others answer at once).
    const held: Promise<unknown>[] = [];
    while ((backends[0]!.calls.get ?? 0) < 1) {
      const call = unary(client, "get", { id: "warm" }, { deadline: Date.now() + 60_000 }).catch((e: unknown) => e);
      const stop = new AbortController();
      const arrived = once(backends[0]!.events, "call", { signal: stop.signal }).then(
        () => "held",
        () => "answered",
      );
      if ((await Promise.race([call.then(() => "answered"), arrived])) === "held") held.push(call);
      stop.abort();
    }
    backends[0]!.behaviour = {};
    const orders: Order[] = [];
    for (let i = 0; i < 20; i++) orders.push(await unary(client, "get", { id: String(i) }));
    assert.equal(served(orders)["orders-0"] ?? 0, 0, "two distinct choices of three: the busy instance never wins");
    assert.ok((served(orders)["orders-1"] ?? 0) > 0 && (served(orders)["orders-2"] ?? 0) > 0);
    backends[0]!.release();
    const ended = (await Promise.all(held)) as Order[];
    assert.deepEqual(ended.map((o) => o.servedBy), ["orders-0"], "the held call was answered in the end");
  });

  it("peak_ewma learns from gRPC round trips and keeps calls away from a slow instance", async () => {
    registry.setConfig("orders", { loadBalancer: { policy: "peak_ewma", config: { defaultRtt: 0 } } });
    const client = start();
    backends[0]!.behaviour = { delayMs: 100 };
    // Unknown instances look fastest (defaultRtt 0), so each is tried until all three have a sample.
    while (backends.some((b) => (b.calls.get ?? 0) === 0)) await unary(client, "get", { id: "warm" });
    const before = backends[0]!.calls.get ?? 0;
    const orders: Order[] = [];
    for (let i = 0; i < 20; i++) orders.push(await unary(client, "get", { id: String(i) }));
    assert.equal(served(orders)["orders-0"] ?? 0, 0, "two distinct choices of three: the 100 ms instance never wins");
    assert.equal(backends[0]!.calls.get ?? 0, before);
  });

  it("retries UNAVAILABLE on another instance for an idempotent method, and never resends one that is not (the server may have run it)", async () => {
    const client = start({ loadBalancer: { policy: "round_robin" }, resilience: { outlier: false } });
    backends[0]!.behaviour = { fail: status.UNAVAILABLE };
    const orders: Order[] = [];
    for (let i = 0; i < 6; i++) orders.push(await unary(client, "get", { id: String(i) }));
    assert.equal(served(orders)["orders-0"] ?? 0, 0);
    assert.equal(orders.length, 6);
    assert.ok((backends[0]!.calls.get ?? 0) >= 1, "orders-0 was tried");
    // Create is not idempotent: an UNAVAILABLE answer (or a connection that broke mid-call, which grpc-js
    // also reports as UNAVAILABLE) does not prove the server did nothing, so it goes back to the caller.
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) outcomes.push(await unary(client, "create", { item: String(i) }).then((o) => o.servedBy, (err: unknown) => (isServiceError(err) ? status[err.code] : String(err))));
    const created = (backends[0]!.calls.create ?? 0) + (backends[1]!.calls.create ?? 0) + (backends[2]!.calls.create ?? 0);
    assert.equal(created, 6, "each Create reached a server once");
    assert.equal(outcomes.filter((o) => o === "UNAVAILABLE").length, backends[0]!.calls.create ?? 0);
  });

  it("an instance that refuses connections: a non-idempotent call goes to another (nothing was sent), waitForReady too", async () => {
    const dead = await closedPort();
    registry.setEndpoints("orders", [{ id: "dead", address: "127.0.0.1", port: dead }, backends[1]!.endpoint()]);
    // Retried on connect failures only: a refusal is one (an UNAVAILABLE answer would not be).
    const client = start({ loadBalancer: { policy: "round_robin" }, resilience: { retries: { retryOn: ["connect-failure"] } } });
    const orders: Order[] = [];
    for (let i = 0; i < 4; i++) orders.push(await unary(client, "create", { item: String(i) }));
    assert.deepEqual(served(orders), { "orders-1": 4 }, "Create is not idempotent, yet resent after the refusal");
    assert.equal(backends[1]!.calls.create, 4, "each Create reached a server once");
    const deadSnapshot = mesh.snapshot().services.find((s) => s.name === "orders")?.endpoints.find((e) => e.id === "dead");
    assert.ok((deadSnapshot?.rttMs ?? 0) >= 500, "the dead instance was tried, and its refusals count as failures for the load-aware balancers");
    // A caller that waits for ready is not left waiting on the dead instance: the mesh goes elsewhere.
    for (let i = 0; i < 2; i++) {
      const order = await unary(client, "create", { item: `w${i}` }, { metadata: new Metadata({ waitForReady: true }), deadline: Date.now() + 5000 });
      assert.equal(order.servedBy, "orders-1");
    }
    grpc.close();
    await mesh.close();

    // Nothing to go to but the dead instance, and no retries: the refusal is the caller's status.
    registry.setEndpoints("orders", [{ id: "dead", address: "127.0.0.1", port: dead }]);
    const alone = start({ resilience: { retries: { maxRetries: 0 } } });
    await assert.rejects(unary(alone, "create", { item: "x" }), (err: unknown) => {
      assert.ok(isServiceError(err));
      assert.equal(err.code, status.UNAVAILABLE);
      assert.match(err.details, /Could not connect to endpoint dead of 'orders'/);
      return true;
    });
    assert.equal(grpc.attemptsInFlight, 0);
  });

  it("a server's UNAVAILABLE with any trailers is the server's answer, never taken for the balancer's refusal", async () => {
    registry.setEndpoints("orders", [backends[0]!.endpoint()]);
    backends[0]!.behaviour = { fail: status.UNAVAILABLE, failTrailers: { "x-proxyless-refused": "1", "x-proxyless-error-code": "ERR_NO_ENDPOINTS" } };
    const client = start({ resilience: { retries: { retryOn: ["connect-failure"] } } });
    await assert.rejects(unary(client, "create", { item: "x" }), (err: unknown) => isServiceError(err) && err.code === status.UNAVAILABLE);
    assert.equal(backends[0]!.calls.create, 1, "not retried: only connect failures are, and the server answered");
  });

  it("does not resend a non-idempotent method after INTERNAL; resends an idempotent one", async () => {
    const client = start({ resilience: { retries: { retryOn: ["5xx"] } } });
    for (const b of backends) b.behaviour = { fail: status.INTERNAL };
    await assert.rejects(unary(client, "create", { item: "x" }), (err: unknown) => isServiceError(err) && err.code === status.INTERNAL);
    const creates = backends.reduce((n, b) => n + (b.calls.create ?? 0), 0);
    assert.equal(creates, 1, "sent once");
    await assert.rejects(unary(client, "get", { id: "x" }), (err: unknown) => isServiceError(err) && err.code === status.INTERNAL);
    const gets = backends.reduce((n, b) => n + (b.calls.get ?? 0), 0);
    assert.equal(gets, 3, "Get is IDEMPOTENT in the proto: the first try and two retries (maxRetries 2)");
  });

  it("routes by gRPC method: Create goes to the v2 canary subset, Get follows a 50/50 split", async () => {
    registry.setConfig("orders", {
      resolver: { subsets: { v1: { filter: "Service.Meta.version == v1" }, v2: { filter: "Service.Meta.version == v2" } } },
      router: { routes: [{ match: { pathExact: "/orders.Orders/Create" }, destination: { subset: "v2", requestHeaders: { set: { "x-canary": "yes" } } } }] },
      splitter: { splits: [{ weight: 50, subset: "v1" }, { weight: 50, subset: "v2" }] },
    });
    const client = start();
    const creates: Order[] = [];
    for (let i = 0; i < 10; i++) creates.push(await unary(client, "create", { item: String(i) }));
    assert.deepEqual(served(creates), { "orders-2": 10 });
    assert.ok(creates.every((o) => o.canary === "yes"), "the route's header change reached the backend as metadata");
    const gets: Order[] = [];
    for (let i = 0; i < 20; i++) gets.push(await unary(client, "get", { id: String(i) }));
    const byVersion = { v1: 0, v2: 0 };
    for (const o of gets) byVersion[o.servedBy === "orders-2" ? "v2" : "v1"]++;
    assert.deepEqual(byVersion, { v1: 10, v2: 10 });
  });

  it("routes on metadata: a header match sends the call to v2", async () => {
    registry.setConfig("orders", {
      resolver: { subsets: { v1: { filter: "Service.Meta.version == v1" }, v2: { filter: "Service.Meta.version == v2" } }, defaultSubset: "v1" },
      router: { routes: [{ match: { headers: [{ name: "x-beta", exact: "1" }] }, destination: { subset: "v2" } }] },
    });
    const client = start();
    const md = new Metadata();
    md.set("x-beta", "1");
    for (let i = 0; i < 4; i++) assert.equal((await unary(client, "get", { id: "b" }, { metadata: md })).servedBy, "orders-2");
    for (let i = 0; i < 4; i++) assert.notEqual((await unary(client, "get", { id: "n" })).servedBy, "orders-2");
  });

  it("propagates the caller's deadline to the server, and ends a call the server does not answer in time", async () => {
    const client = start();
    const answer = await unary(client, "get", { id: "d" }, { deadline: Date.now() + 2000 });
    assert.ok(answer.deadlineMs > 0 && answer.deadlineMs <= 2000, `server saw ${answer.deadlineMs} ms left`);
    for (const b of backends) b.behaviour = { hang: true };
    const started = Date.now();
    await assert.rejects(unary(client, "get", { id: "late" }, { deadline: Date.now() + 300 }), (err: unknown) => isServiceError(err) && err.code === status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 2000, "ended at the deadline, not after retries past it");
  });

  it("an incoming HTTP request's deadline (withIncomingDeadline) bounds the gRPC calls made for it", async () => {
    const client = start();
    const answer = await withIncomingDeadline({ "x-envoy-expected-rq-timeout-ms": "800" }, () => unary(client, "get", { id: "i" }, { deadline: Date.now() + 60_000 }));
    assert.ok(answer.deadlineMs > 0 && answer.deadlineMs <= 800, `server saw ${answer.deadlineMs} ms left`);
  });

  it("the upstream's timeoutMs becomes the deadline of a call that set none", async () => {
    const client = start({ upstreams: { orders: { timeoutMs: 1500 } } });
    const answer = await unary(client, "get", { id: "t" });
    assert.ok(answer.deadlineMs > 0 && answer.deadlineMs <= 1500, `server saw ${answer.deadlineMs} ms left`);
  });

  it("streams: a server-streaming call gets every message; a client-streaming call sends them all", async () => {
    const client = start();
    const watched = await watchAll(client);
    assert.deepEqual(watched.map((o) => o.id), ["w-0", "w-1", "w-2"]);
    const uploaded = await new Promise<Order>((resolve, reject) => {
      const stream = (client as unknown as { upload(cb: (err: Error | null, o?: Order) => void): NodeJS.WritableStream }).upload((err, o) => (err === null ? resolve(o as Order) : reject(err)));
      for (let i = 0; i < 5; i++) stream.write({ item: String(i) } as never);
      stream.end();
    });
    assert.equal(uploaded.items, 5);
  });

  it("a server-streaming call is retried on UNAVAILABLE before its first message (when it may be sent twice)", async () => {
    const client = start({ loadBalancer: { policy: "round_robin" }, resilience: { retries: { retryNonIdempotent: true } } });
    backends[0]!.behaviour = { fail: status.UNAVAILABLE };
    for (let i = 0; i < 3; i++) {
      const watched = await watchAll(client);
      assert.equal(watched.length, 3);
      assert.notEqual(watched[0]?.servedBy, "orders-0");
    }
  });

  it("fails fast with UNAVAILABLE and the mesh's error code when the service has no endpoints", async () => {
    registry.setEndpoints("orders", []);
    const client = start();
    await assert.rejects(unary(client, "get", { id: "x" }), (err: unknown) => {
      assert.ok(isServiceError(err));
      assert.equal(err.code, status.UNAVAILABLE);
      assert.equal(err.metadata.get(ERROR_CODE_KEY)[0], "ERR_NO_ENDPOINTS");
      assert.match(err.details, /no endpoints registered/);
      return true;
    });
  });

  it("the circuit breaker opens after failures and then refuses without I/O", async () => {
    // Outlier detection off: with it, the first failures would be its to handle, not the breaker's.
    const client = start({ resilience: { retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 3, halfOpenAfterMs: 60_000 } } });
    for (const b of backends) b.behaviour = { fail: status.INTERNAL };
    for (let i = 0; i < 3; i++) await assert.rejects(unary(client, "get", { id: "x" }));
    const before = backends.reduce((n, b) => n + (b.calls.get ?? 0), 0);
    await assert.rejects(unary(client, "get", { id: "x" }), (err: unknown) => isServiceError(err) && err.metadata.get(ERROR_CODE_KEY)[0] === "ERR_CIRCUIT_OPEN");
    assert.equal(backends.reduce((n, b) => n + (b.calls.get ?? 0), 0), before, "no call reached a server");
  });

  it("outlier detection ejects an instance that keeps failing", async () => {
    const client = start({ loadBalancer: { policy: "round_robin" }, resilience: { outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionPercent: 50 } } });
    const ejected: string[] = [];
    mesh.on("endpoint_ejected", (e) => ejected.push(e.endpoint));
    backends[1]!.behaviour = { fail: status.UNAVAILABLE };
    for (let i = 0; i < 12; i++) await unary(client, "get", { id: String(i) });
    assert.deepEqual(ejected, ["orders-1"]);
    const calls = backends[1]!.calls.get ?? 0;
    for (let i = 0; i < 6; i++) assert.notEqual((await unary(client, "get", { id: "after" })).servedBy, "orders-1");
    assert.equal(backends[1]!.calls.get ?? 0, calls, "no call to the ejected instance");
  });

  it("hedges an idempotent method when the first instance is slow", async () => {
    const client = start({ loadBalancer: { policy: "round_robin" }, resilience: { hedging: { delayMs: 50 } } });
    backends[0]!.behaviour = { hang: true };
    const orders: Order[] = [];
    for (let i = 0; i < 3; i++) orders.push(await unary(client, "get", { id: String(i) }, { deadline: Date.now() + 10_000 }));
    assert.equal(served(orders)["orders-0"] ?? 0, 0, "the hedge answered for the hanging instance");
    assert.ok((backends[0]!.calls.get ?? 0) >= 1);
    // Create is not idempotent: not hedged, so it waits for its deadline on the hanging instance.
    backends[1]!.behaviour = { hang: true };
    backends[2]!.behaviour = { hang: true };
    await assert.rejects(unary(client, "create", { item: "c" }, { deadline: Date.now() + 200 }), (err: unknown) => isServiceError(err) && err.code === status.DEADLINE_EXCEEDED);
    assert.equal(backends.reduce((n, b) => n + (b.calls.create ?? 0), 0), 1);
  });

  it("a plain grpc-js client on a proxyless: target is balanced by the mesh too (no interceptor)", async () => {
    start();
    const plain = new proto.Orders(grpc.target("orders"), credentials.createInsecure());
    clients.push(plain);
    const orders: Order[] = [];
    for (let i = 0; i < 9; i++) orders.push(await unary(plain, "get", { id: String(i) }));
    assert.deepEqual(served(orders), { "orders-0": 3, "orders-1": 3, "orders-2": 3 });
  });

  it("a call that waits for a concurrency slot past its deadline ends DEADLINE_EXCEEDED, unsent, and blames no endpoint", async () => {
    const client = start({ resilience: { limits: { maxConcurrent: 1, maxPending: 10 }, outlier: { consecutiveFailures: 1 } } });
    const ejected: string[] = [];
    mesh.on("endpoint_ejected", (e) => ejected.push(e.endpoint));
    for (const b of backends) b.behaviour = { hang: true };
    const stop = new AbortController();
    const arrived = Promise.race(backends.map((b) => once(b.events, "call", { signal: stop.signal })));
    const holder = unary(client, "get", { id: "hold" }, { deadline: Date.now() + 60_000 });
    await arrived;
    stop.abort();
    const sent = (): number => backends.reduce((n, b) => n + (b.calls.get ?? 0), 0);
    await assert.rejects(unary(client, "get", { id: "late" }, { deadline: Date.now() + 100 }), (err: unknown) => {
      assert.ok(isServiceError(err));
      assert.equal(err.code, status.DEADLINE_EXCEEDED);
      assert.equal(err.metadata.get(ERROR_CODE_KEY)[0], "ERR_TIMEOUT");
      return true;
    });
    assert.equal(sent(), 1, "the second call was never sent");
    assert.deepEqual(ejected, []);
    for (const b of backends) b.release();
    assert.equal((await holder).id, "hold");
  });

  it("a refused streaming call reports through its stream's error event, not by throwing", async () => {
    registry.setEndpoints("orders", []);
    const client = start();
    const stream = (client as unknown as { watch(req: object): NodeJS.EventEmitter }).watch({ id: "w" });
    const [err] = (await once(stream, "error")) as [ServiceError];
    assert.equal(err.code, status.UNAVAILABLE);
  });

  it("after mesh.close() a plain client's calls fail at once; grpcMesh() binds a new mesh afresh after close()", async () => {
    start();
    const plain = new proto.Orders(grpc.target("orders"), credentials.createInsecure());
    clients.push(plain);
    assert.equal((await unary(plain, "get", { id: "1" })).id, "1");
    await mesh.close();
    await assert.rejects(unary(plain, "get", { id: "2" }), (err: unknown) => isServiceError(err) && err.code === status.UNAVAILABLE);
    const first = grpcMesh(mesh);
    first.close();
    assert.notEqual(grpcMesh(mesh), first, "a closed binding is not handed out again");
  });
});
