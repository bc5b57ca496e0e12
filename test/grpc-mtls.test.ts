import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { ServerCredentials, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { createMesh, pemIdentity, type Mesh } from "proxyless";
import { grpcMesh } from "proxyless/grpc";
import { MockRegistry, TestCertificateAuthority, type TestCertificate } from "proxyless/testing";
import { GrpcBackend, proto, unary } from "./helpers/grpc-backend.ts";
import { leafFor } from "./helpers/tls-backend.ts";

const isServiceError = (err: unknown): err is ServiceError => err instanceof Error && typeof (err as { code?: unknown }).code === "number";

describe("gRPC over mTLS with the mesh's identity", () => {
  let ca: TestCertificateAuthority;
  let webLeaf: TestCertificate;
  let ordersLeaf: TestCertificate;
  const serverCredentials = (leaf: TestCertificate): ServerCredentials =>
    ServerCredentials.createSsl(Buffer.from(ca.rootPem), [{ private_key: Buffer.from(leaf.keyPem), cert_chain: Buffer.from(leaf.certPem) }], true);

  before(async () => {
    ca = await TestCertificateAuthority.create();
    webLeaf = await leafFor(ca, "web");
    ordersLeaf = await leafFor(ca, "orders");
  });

  const meshFor = (endpoints: Record<string, object[]>, leaf = webLeaf): Mesh =>
    createMesh({ registry: new MockRegistry(endpoints as never), service: "web", tls: { identity: pemIdentity({ cert: leaf.certPem, key: leaf.keyPem, ca: ca.rootPem }) }, resilience: { retries: false } });

  it("authenticates both ways: the server sees the caller's SPIFFE ID; the caller checked the server's", async () => {
    const orders = await GrpcBackend.start("orders-0", serverCredentials(ordersLeaf));
    const mesh = meshFor({ orders: [orders.endpoint()] });
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(proto.Orders, "orders");
    try {
      const answer = await unary(client, "get", { id: "1" });
      assert.equal(answer.servedBy, "orders-0");
      assert.equal(answer.caller, ca.spiffeId("web"));
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
      await orders.close();
    }
  });

  it("refuses a server with another service's SPIFFE ID: UNAVAILABLE, and no call reaches it", async () => {
    const impostor = await GrpcBackend.start("impostor", serverCredentials(await leafFor(ca, "payments")));
    const mesh = meshFor({ orders: [impostor.endpoint()] });
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(proto.Orders, "orders");
    try {
      await assert.rejects(unary(client, "create", { item: "card=4111" }), (err: unknown) => {
        assert.ok(isServiceError(err));
        assert.equal(err.code, status.UNAVAILABLE);
        assert.match(err.details, /presented spiffe:\/\/[^ ]+\/svc\/payments, not the identity expected of 'orders'/);
        return true;
      });
      assert.equal(impostor.calls.create ?? 0, 0);
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
      await impostor.close();
    }
  });

  it("new connections use a rotated identity; the server side can take its credentials from a mesh too", async () => {
    // The server's own mesh gives its credentials (the identity of orders, rotated as it is).
    const serverMesh = createMesh({ registry: new MockRegistry(), service: "orders", tls: { identity: pemIdentity({ cert: ordersLeaf.certPem, key: ordersLeaf.keyPem, ca: ca.rootPem }) } });
    const serverSide = grpcMesh(serverMesh);
    const first = await GrpcBackend.start("orders-0", serverSide.serverCredentials());
    const second = await GrpcBackend.start("orders-1", serverSide.serverCredentials());
    const registry = new MockRegistry({ orders: [first.endpoint()] });
    const mesh = createMesh({ registry, service: "web", tls: { identity: pemIdentity({ cert: webLeaf.certPem, key: webLeaf.keyPem, ca: ca.rootPem }) } });
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(proto.Orders, "orders");
    const serial = (s: string): string => s.replace(/:/g, "").replace(/^0+/, "").toLowerCase();
    try {
      const before = await unary(client, "get", { id: "1" });
      assert.equal(serial(before.callerSerial), serial(webLeaf.serialNumber));
      const rotated = await leafFor(ca, "web");
      (mesh.identity as ReturnType<typeof pemIdentity>).update({ cert: rotated.certPem, key: rotated.keyPem, ca: ca.rootPem });
      // A new endpoint means a new connection, made with the new certificate.
      registry.setEndpoints("orders", [second.endpoint()]);
      const after = await unary(client, "get", { id: "2" });
      assert.equal(after.servedBy, "orders-1");
      assert.equal(serial(after.callerSerial), serial(rotated.serialNumber));
      assert.notEqual(serial(rotated.serialNumber), serial(webLeaf.serialNumber));
      assert.equal(after.caller, ca.spiffeId("web"));
    } finally {
      client.close();
      grpc.close();
      serverSide.close();
      await mesh.close();
      await serverMesh.close();
      await first.close();
      await second.close();
    }
  });
});
