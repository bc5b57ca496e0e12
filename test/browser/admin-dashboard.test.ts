/**
 * The admin server's page in a real browser: Debian's `chromium`, driven by playwright-core
 * (`npm run test:browser`; .ci/run installs chromium when it is missing). Set CHROMIUM_PATH to use
 * another build, and PROXYLESS_SCREENSHOT=1 to write the screenshot docs/admin.md shows.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { createMesh, type Mesh } from "proxyless";
import { startAdmin, type AdminServer } from "proxyless/admin";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "../helpers/backend.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = process.env.PROXYLESS_SCREENSHOT === undefined ? join(mkdtempSync(join(tmpdir(), "proxyless-shot-")), "admin.png") : fileURLToPath(new URL("../../docs/images/admin.png", import.meta.url));

describe("the admin page in Chromium", () => {
  let backends: Backend[];
  let mesh: Mesh;
  let admin: AdminServer;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`);
    backends = await startBackends(3);
    const registry = new MockRegistry(
      { orders: backends.map((b) => b.endpoint) },
      { orders: { router: { routes: [{ match: { pathPrefix: "/v2/" }, destination: { prefixRewrite: "/" } }] } } },
    );
    mesh = createMesh({ service: "web", registry, resilience: { outlier: { consecutiveFailures: 3 } } });
    for (let i = 0; i < 6; i++) await (await mesh.client("orders").request({ path: "/" })).body.dump();
    admin = await startAdmin(mesh, { port: 0 });
    // Root in a container: Chromium's sandbox needs user namespaces it may not have.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") problems.push(`${msg.type()}: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  });
  after(async () => {
    await browser?.close();
    await admin?.close();
    await mesh?.close();
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  it("loads without console errors and shows the service and its endpoints", async () => {
    const res = await page.goto(admin.url);
    assert.equal(res?.status(), 200);
    await page.waitForSelector('[data-service="orders"] [data-endpoint]');
    const rows = await page.locator('[data-service="orders"] [data-endpoint]').count();
    assert.equal(rows, 3);
    assert.equal(await page.locator('[data-service="orders"] [data-state="in-rotation"]').count(), 3);
    assert.match(await page.locator('[data-service="orders"] .routes').innerText(), /pathPrefix/);
    assert.ok((await page.locator('[data-service="orders"] canvas').count()) >= 5, "the charts are drawn: rate, errors, in flight, latency, ejections");
    assert.deepEqual(problems, []);
  });

  it("shows an ejection within two seconds of the mesh making it", async () => {
    const dead = backends[0]!;
    await dead.kill();
    // Calls until outlier detection ejects the dead endpoint (connect failures; retries land elsewhere).
    for (let i = 0; i < 50 && !mesh.snapshot().services[0]!.endpoints.some((e) => e.id === dead.endpoint.id && e.ejected); i++) {
      await (await mesh.client("orders").request({ path: "/" })).body.dump();
    }
    assert.ok(mesh.snapshot().services[0]!.endpoints.some((e) => e.id === dead.endpoint.id && e.ejected), "the mesh ejected the dead endpoint");
    const ejectedAt = performance.now();
    await page.waitForSelector(`[data-endpoint="${dead.endpoint.id}"][data-state="ejected"]`, { timeout: 2000 });
    assert.ok(performance.now() - ejectedAt <= 2000);
    await page.waitForSelector('#events [data-type="endpoint_ejected"]', { timeout: 2000 });
    assert.deepEqual(problems, []);
  });

  it("answers the explain form: where a request would go, and why", async () => {
    await page.fill('#explain input[name="path"]', "/v2/items");
    await page.click('#explain button[type="submit"]');
    await page.locator("#explanation", { hasText: "route: #0" }).waitFor({ timeout: 2000 });
    const text = await page.locator("#explanation").innerText();
    assert.match(text, /path sent: \/items/);
    assert.match(text, /endpoints: /);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000, "a screenshot was written");
    assert.deepEqual(problems, []);
  });
});
