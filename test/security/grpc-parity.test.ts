import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { credentials, Metadata, ServerCredentials, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { createMesh, pemIdentity, type Mesh } from "proxyless";
import { ERROR_CODE_KEY, grpcMesh } from "proxyless/grpc";
import { MockRegistry, TestCertificateAuthority, type TestCertificate } from "proxyless/testing";
import { GrpcBackend, proto, unary } from "../helpers/grpc-backend.ts";
import { leafFor } from "../helpers/tls-backend.ts";

const PICK_KEY = "x-proxyless-pick";

const isServiceError = (err: unknown): err is ServiceError => err instanceof Error && typeof (err as { code?: unknown }).code === "number";

describe("gRPC parity: an endpoint's own identity is checked per connection, as HTTP checks it", () => {
  let ca: TestCertificateAuthority;
  let webLeaf: TestCertificate;
  const serverCredentials = (leaf: TestCertificate): ServerCredentials =>
    ServerCredentials.createSsl(Buffer.from(ca.rootPem), [{ private_key: Buffer.from(leaf.keyPem), cert_chain: Buffer.from(leaf.certPem) }], true);
  const meshFor = (registry: MockRegistry, resilience: object = { retries: false }): Mesh =>
    createMesh({ registry, service: "web", tls: { identity: pemIdentity({ cert: webLeaf.certPem, key: webLeaf.keyPem, ca: ca.rootPem }) }, resilience });

  before(async () => {
    ca = await TestCertificateAuthority.create();
    webLeaf = await leafFor(ca, "web");
  });

  it("refuses an endpoint whose certificate is its service's but not the identity registered for it: ERR_PEER_IDENTITY, nothing sent, a connect failure for outlier detection", async () => {
    // The registry pins endpoint orders-0 to the identity orders-blue; the server presents plain orders.
    const server = await GrpcBackend.start("orders-0", serverCredentials(await leafFor(ca, "orders")));
    const pinned = ca.spiffeId("orders-blue");
    const registry = new MockRegistry({ orders: [server.endpoint({ identity: pinned })] });
    const mesh = meshFor(registry, { retries: false, outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 } });
    const ejected: string[] = [];
    mesh.on("endpoint_ejected", (e) => ejected.push(e.endpoint));
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(proto.Orders, "orders");
    try {
      await assert.rejects(unary(client, "create", { item: "card=4111" }), (err: unknown) => {
        assert.ok(isServiceError(err), String(err));
        assert.equal(err.code, status.UNAVAILABLE);
        assert.deepEqual(err.metadata.get(ERROR_CODE_KEY), ["ERR_PEER_IDENTITY"], err.details);
        assert.match(err.details, /presented spiffe:\/\/[^ ]+\/svc\/orders, not the identity expected/);
        assert.ok(err.details.includes("orders-blue"), err.details);
        return true;
      });
      assert.equal(server.calls.create ?? 0, 0, "no call reached the server");
      assert.deepEqual(ejected, ["orders-0"], "the refusal counted as the endpoint's connect failure");
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
      await server.close();
    }
  });

  it("says an expired server certificate as HTTP says it: ERR_PEER_IDENTITY, its certificate has expired, nothing sent", async () => {
    const expired = await leafFor(ca, "orders", { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) });
    const server = await GrpcBackend.start("orders-0", serverCredentials(expired));
    const mesh = meshFor(new MockRegistry({ orders: [server.endpoint()] }));
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(proto.Orders, "orders");
    try {
      await assert.rejects(unary(client, "create", { item: "card=4111" }), (err: unknown) => {
        assert.ok(isServiceError(err), String(err));
        assert.equal(err.code, status.UNAVAILABLE);
        assert.deepEqual(err.metadata.get(ERROR_CODE_KEY), ["ERR_PEER_IDENTITY"], err.details);
        assert.match(err.details, /Endpoint orders-0 of 'orders' was refused: its certificate has expired/);
        return true;
      });
      assert.equal(server.calls.create ?? 0, 0, "no call reached the server");
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
      await server.close();
    }
  });

  it("honours an endpoint's own identity: a server presenting exactly the registered SPIFFE ID is reached", async () => {
    const blue = await GrpcBackend.start("orders-blue-0", serverCredentials(await leafFor(ca, "orders-blue")));
    const mesh = meshFor(new MockRegistry({ orders: [blue.endpoint({ identity: ca.spiffeId("orders-blue") })] }));
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(proto.Orders, "orders");
    try {
      const answer = await unary(client, "get", { id: "1" });
      assert.equal(answer.servedBy, "orders-blue-0");
      assert.equal(answer.caller, ca.spiffeId("web"));
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
      await blue.close();
    }
  });

  it("a plain client on grpc.credentials (no interceptor) gets the same per-endpoint check", async () => {
    const server = await GrpcBackend.start("orders-0", serverCredentials(await leafFor(ca, "orders")));
    const mesh = meshFor(new MockRegistry({ orders: [server.endpoint({ identity: ca.spiffeId("orders-blue") })] }));
    const grpc = grpcMesh(mesh);
    const plain: Client = new proto.Orders(grpc.target("orders"), grpc.credentials);
    try {
      await assert.rejects(unary(plain, "create", { item: "card=4111" }, { deadline: Date.now() + 5_000 }), (err: unknown) => {
        assert.ok(isServiceError(err), String(err));
        assert.equal(err.code, status.UNAVAILABLE);
        assert.match(err.details, /not the identity expected/);
        return true;
      });
      assert.equal(server.calls.create ?? 0, 0, "no call reached the server");
    } finally {
      plain.close();
      grpc.close();
      await mesh.close();
      await server.close();
    }
  });
});

describe("gRPC parity: the endpoint pick cannot be forged through metadata", () => {
  let orders: GrpcBackend;
  let payments: GrpcBackend;
  let mesh: Mesh;

  before(async () => {
    orders = await GrpcBackend.start("orders-0");
    payments = await GrpcBackend.start("payments-0");
    mesh = createMesh({ registry: new MockRegistry({ orders: [orders.endpoint()], payments: [payments.endpoint()] }), service: "web", resilience: { retries: false } });
  });
  after(async () => {
    await mesh.close();
    await orders.close();
    await payments.close();
  });

  it(`a caller that sets ${PICK_KEY} to another service's endpoint reaches only the service it called, and the key never reaches a server`, async () => {
    const grpc = grpcMesh(mesh);
    // A legitimate call to payments first: the mesh has chosen (and named) payments' endpoint.
    const paymentsClient: Client = grpc.client(proto.Orders, "payments");
    assert.equal((await unary(paymentsClient, "get", { id: "p" })).servedBy, "payments-0");
    const paymentsCalls = payments.calls.get ?? 0;

    const meshed: Client = grpc.client(proto.Orders, "orders");
    // Without the interceptor, on the mesh's target (a client someone made by hand).
    const plain: Client = new proto.Orders(grpc.target("orders"), credentials.createInsecure());
    try {
      // Whatever the value (the old code named endpoints "1", "2", ...), the call stays with orders.
      const guesses = ["1", "2", "3", "4", "5", "0", "payments-0", `127.0.0.1:${payments.port}`];
      for (const client of [plain, meshed]) {
        for (const guess of guesses) {
          const metadata = new Metadata();
          metadata.set(PICK_KEY, guess);
          const answer = await unary(client, "get", { id: guess }, { metadata });
          assert.equal(answer.servedBy, "orders-0", `${PICK_KEY}: ${guess} moved the call to ${answer.servedBy}`);
        }
      }
      assert.equal(payments.calls.get ?? 0, paymentsCalls, "no forged call reached payments");
      for (const seen of [...orders.seen, ...payments.seen]) assert.deepEqual(seen.get(PICK_KEY), [], `${PICK_KEY} reached a server`);
    } finally {
      plain.close();
      meshed.close();
      paymentsClient.close();
      grpc.close();
    }
  });
});
