import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isMeshError, pemIdentity, meshErrorOf } from "proxyless";
import { TestCertificateAuthority } from "proxyless/testing";
import { resolveTlsOptions } from "../src/security/tls-options.ts";

describe("tls options: expected SPIFFE IDs and SNI", () => {
  it("matches Consul's layout in any datacenter by default, one datacenter when given, or a custom template", async () => {
    const ca = await TestCertificateAuthority.create({ trustDomain: "td.consul" });
    const leaf = await ca.issue({ uri: ca.spiffeId("web") });
    const identity = pemIdentity({ cert: leaf.certPem, key: leaf.keyPem, ca: ca.rootPem });
    const any = resolveTlsOptions({ identity });
    const orders = any.expectedIdentity("orders", "td.consul");
    assert.ok(orders.test("spiffe://td.consul/ns/default/dc/dc1/svc/orders"));
    assert.ok(orders.test("spiffe://td.consul/ns/default/dc/eu-west/svc/orders"));
    assert.ok(!orders.test("spiffe://td.consul/ns/default/dc/dc1/svc/orders-admin"));
    assert.ok(!orders.test("spiffe://other.consul/ns/default/dc/dc1/svc/orders"));
    assert.equal(any.serverName("orders", "td.consul"), "orders.default.dc1.internal.td.consul");
    const one = resolveTlsOptions({ identity, datacenter: "eu", namespace: "shop" });
    assert.ok(one.expectedIdentity("orders", "td.consul").test("spiffe://td.consul/ns/shop/dc/eu/svc/orders"));
    assert.ok(!one.expectedIdentity("orders", "td.consul").test("spiffe://td.consul/ns/shop/dc/us/svc/orders"));
    assert.equal(one.serverName("orders", "td.consul"), "orders.shop.eu.internal.td.consul");
    const k8s = resolveTlsOptions({ identity, spiffeTemplate: "spiffe://{trustDomain}/ns/{namespace}/sa/{service}", serverNameTemplate: "{service}.{namespace}.svc" });
    assert.ok(k8s.expectedIdentity("orders", "cluster.local").test("spiffe://cluster.local/ns/default/sa/orders"));
    assert.equal(k8s.serverName("orders", "cluster.local"), "orders.default.svc");
  });

  it("rejects bad options with ERR_INVALID_CONFIG naming the field", () => {
    assert.throws(() => resolveTlsOptions({}), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "tls.identity");
    const identity = { current: () => undefined, ready: () => new Promise<never>(() => undefined), subscribe: () => () => undefined, close: () => Promise.resolve() };
    assert.throws(() => resolveTlsOptions({ identity, mode: "loose" }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "tls.mode");
    assert.throws(() => resolveTlsOptions({ identity, spiffeTemplate: "https://x/{service}" }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "tls.spiffeTemplate");
  });
});
