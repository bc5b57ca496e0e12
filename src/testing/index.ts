/**
 * The test kit: an in-memory registry driven by tests, a fake clock, a seeded random source, a fake
 * Consul, and a certificate authority that mints SPIFFE certificates.
 *
 * @module proxyless/testing
 */
export { MockRegistry } from "./mock-registry.ts";
export { FakeClock } from "./fake-clock.ts";
export { createSeededRandom } from "../core/random.ts";
export { FakeConsul, type FakeConsulOptions, type FakeConsulTls } from "./fake-consul/fake-consul.ts";
export type { CheckStatus } from "./fake-consul/consul-state.ts";
export type { FakeAclToken } from "./fake-consul/acl.ts";
export { TestCertificateAuthority, type TestCertificate, type LeafOptions, type TestCaOptions } from "./test-ca.ts";
