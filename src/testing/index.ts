/**
 * The test kit: an in-memory registry driven by tests, a fake clock and a seeded random source.
 *
 * @module proxyless/testing
 */
export { MockRegistry } from "./mock-registry.ts";
export { FakeClock } from "./fake-clock.ts";
export { createSeededRandom } from "../core/random.ts";
export { FakeConsul, type FakeConsulOptions } from "./fake-consul/fake-consul.ts";
export type { CheckStatus } from "./fake-consul/consul-state.ts";
