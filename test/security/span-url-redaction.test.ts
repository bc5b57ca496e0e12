import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { request } from "undici";
import { createMesh, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "../helpers/backend.ts";
import { createOtel, type Otel } from "../helpers/otel.ts";

/**
 * Query strings carry secrets (`?token=`, `?api_key=`, pre-signed URLs' `Signature` and `sig`), and
 * traces are exported to systems with wider access than the service. The spans' `url.full` keeps the
 * query's keys and replaces every value with `REDACTED`; no user name or password ever appears.
 */

const SECRETS = ["s3cret-token", "AKIAIOSFODNN7EXAMPLE", "c2lnbmF0dXJl", "hunter2", "bare-secret"];

describe("url.full on spans holds no query values and no credentials", () => {
  let backends: Backend[];
  let otel: Otel;
  let mesh: Mesh;
  before(async () => {
    backends = await startBackends(1, "r");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh.close();
    await otel.shutdown();
  });

  function start(): Mesh {
    otel = createOtel();
    return (mesh = createMesh({
      registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }),
      telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider },
    }));
  }

  /** Every attribute value of every span, as text. */
  function attributeTexts(): string[] {
    return otel.spans().flatMap((s) => Object.values(s.attributes).map(String));
  }

  const query = "?token=s3cret-token&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=c2lnbmF0dXJl&page=2&bare-secret";
  const redacted = "?token=REDACTED&AWSAccessKeyId=REDACTED&Signature=REDACTED&page=REDACTED&REDACTED";

  for (const api of ["request", "fetch"] as const) {
    it(`client.${api}(): the query's values are REDACTED, its keys kept`, async () => {
      const m = start();
      if (api === "request") await (await m.client("orders").request({ path: `/v1/files${query}` })).body.dump();
      else await (await m.client("orders").fetch(`/v1/files${query}`)).arrayBuffer();
      const urls = otel.spans().map((s) => s.attributes["url.full"]).filter((u) => u !== undefined);
      assert.deepEqual(urls, [`http://orders/v1/files${redacted}`]);
      for (const text of attributeTexts()) for (const secret of SECRETS) assert.ok(!text.includes(secret), `a span attribute shows ${secret}: ${text}`);
      // The backend got the query as sent: only the telemetry is redacted.
      assert.ok(backends[0]!.seen.at(-1)?.url.endsWith(query));
    });
  }

  it("mesh.dispatcher with user:password@ in the URL: neither appears, nor the query's values", async () => {
    const m = start();
    const res = await request(`http://admin:hunter2@orders/v1/files${query}`, { dispatcher: m.dispatcher });
    await res.body.dump();
    const urls = otel.spans().map((s) => s.attributes["url.full"]).filter((u) => u !== undefined);
    assert.deepEqual(urls, [`http://orders/v1/files${redacted}`]);
    for (const text of attributeTexts()) {
      for (const secret of [...SECRETS, "admin:"]) assert.ok(!text.includes(secret), `a span attribute shows ${secret}: ${text}`);
    }
  });

  it("a path without a query is unchanged, and an empty value stays empty", async () => {
    const m = start();
    await (await m.client("orders").request({ path: "/v1/plain" })).body.dump();
    await (await m.client("orders").request({ path: "/v1/empty?a=&b" })).body.dump();
    const urls = otel.spans().map((s) => s.attributes["url.full"]).filter((u) => u !== undefined);
    assert.deepEqual(urls, ["http://orders/v1/plain", "http://orders/v1/empty?a=&REDACTED"]);
  });
});
