import assert from "node:assert/strict";
import { request } from "undici";
import type { FakeConsul } from "proxyless/testing";

/** Writes a config entry to FakeConsul as `consul config write` would (`PUT /v1/config`), and checks it was taken. */
export async function putEntry(fake: FakeConsul, entry: unknown): Promise<void> {
  const res = await request(`${fake.url}/v1/config`, { method: "PUT", body: JSON.stringify(entry) });
  assert.equal(res.statusCode, 200, await res.body.text());
}
