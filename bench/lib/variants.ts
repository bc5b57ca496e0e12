import { fetch as undiciFetch, Pool, request as undiciRequest } from "undici";
import { startAdmin, type AdminServer } from "proxyless/admin";
import { createMesh, type PoolOptions } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { startBenchSdk, type BenchSdk } from "./otel-sdk.ts";
import { sdkFloorSend } from "./sdk-floor.ts";

/** The ways of sending the same request that the bench compares: four in the rounds, and `client.request` with the OpenTelemetry SDK. */
export type VariantKey =
  | "raw_request"
  | "client_request"
  | "client_fetch"
  | "undici_fetch"
  | "undici_request"
  | "dispatcher_request"
  | "client_request_otel"
  | "raw_request_otel"
  | "raw_request_instrumented"
  | "client_request_plain"
  | "client_request_admin";

/** One way of sending a request: `send` sends one GET and consumes the whole body. */
export interface Variant {
  readonly key: VariantKey;
  readonly label: string;
  readonly send: () => Promise<void>;
  /** Set up before each of its runs (lead-in and measured), and undone after: what must not touch the other variants. */
  readonly enter?: () => void;
  readonly leave?: () => void;
}

/** The variants, all sending to the same backend, plus what closes their pools. */
export interface VariantSet {
  /** Raw `Pool.request` first: it is the baseline of every ratio. */
  readonly variants: readonly Variant[];
  /**
   * The pairs of the dispatcher phase: `undici.request` on a plain Pool, and the same call with
   * `mesh.dispatcher` (to `http://bench/...`). The fetch phase pairs `undici_fetch` and `client_fetch` of `variants`.
   */
  readonly dispatcher: { readonly bare: Variant; readonly mesh: Variant };
  /**
   * The pairs of the admin phase: `client.request` on two meshes made alike, the second with an admin
   * server listening (`startAdmin`) that nobody reads. `startAdmin` starts it.
   */
  readonly admin: { readonly bare: Variant; readonly mesh: Variant; startAdmin(): Promise<void> };
  close(): Promise<void>;
}

/** The service name the mesh knows the backend by. */
const SERVICE = "bench";

function expectOk(status: number, variant: VariantKey): void {
  if (status !== 200) throw new Error(`${variant}: expected status 200, got ${status}`);
}

/**
 * Creates the four variants against one backend, and the two of the dispatcher phase. The raw pool,
 * the mesh's endpoint pool and the pools under `undici.fetch` and `undici.request` all get the same settings.
 *
 * @param origin - the backend, `http://127.0.0.1:<port>`
 * @param path - the request path
 * @param pool - pool settings for every variant
 */
export function createVariants(origin: string, path: string, pool: PoolOptions): VariantSet {
  const url = new URL(origin);
  const rawPool = new Pool(origin, pool);
  const fetchPool = new Pool(origin, pool);
  const requestPool = new Pool(origin, pool);
  const fetchUrl = origin + path;
  const meshUrl = `http://${SERVICE}${path}`;
  const registry = new MockRegistry({ [SERVICE]: [{ address: url.hostname, port: Number(url.port) }] });
  const mesh = createMesh({ registry, pool });
  const client = mesh.client(SERVICE);

  const variants: Variant[] = [
    {
      key: "raw_request",
      label: "undici Pool.request (raw)",
      send: async () => {
        const { statusCode, body } = await rawPool.request({ path, method: "GET" });
        await body.text();
        expectOk(statusCode, "raw_request");
      },
    },
    {
      key: "client_request",
      label: "mesh client.request",
      send: async () => {
        const { statusCode, body } = await client.request({ path });
        await body.text();
        expectOk(statusCode, "client_request");
      },
    },
    {
      key: "client_fetch",
      label: "mesh client.fetch",
      send: async () => {
        const res = await client.fetch(path);
        await res.text();
        expectOk(res.status, "client_fetch");
      },
    },
    {
      key: "undici_fetch",
      label: "undici.fetch (Pool dispatcher)",
      send: async () => {
        const res = await undiciFetch(fetchUrl, { dispatcher: fetchPool });
        await res.text();
        expectOk(res.status, "undici_fetch");
      },
    },
  ];

  const dispatcher: { readonly bare: Variant; readonly mesh: Variant } = {
    bare: {
      key: "undici_request",
      label: "undici.request (Pool dispatcher)",
      send: async () => {
        const { statusCode, body } = await undiciRequest(fetchUrl, { dispatcher: requestPool });
        await body.text();
        expectOk(statusCode, "undici_request");
      },
    },
    mesh: {
      key: "dispatcher_request",
      label: "undici.request with mesh.dispatcher",
      send: async () => {
        const { statusCode, body } = await undiciRequest(meshUrl, { dispatcher: mesh.dispatcher });
        await body.text();
        expectOk(statusCode, "dispatcher_request");
      },
    },
  };

  // Two more meshes alike, for the admin phase: their own pools and history, so neither is the one above.
  const plainMesh = createMesh({ registry: new MockRegistry({ [SERVICE]: [{ address: url.hostname, port: Number(url.port) }] }), pool });
  const adminMesh = createMesh({ registry: new MockRegistry({ [SERVICE]: [{ address: url.hostname, port: Number(url.port) }] }), pool });
  let admin: AdminServer | undefined;
  const clientOf = (key: VariantKey, label: string, m: typeof mesh): Variant => {
    const c = m.client(SERVICE);
    return {
      key,
      label,
      send: async () => {
        const { statusCode, body } = await c.request({ path });
        await body.text();
        expectOk(statusCode, key);
      },
    };
  };

  return {
    variants,
    dispatcher,
    admin: {
      bare: clientOf("client_request_plain", "client.request", plainMesh),
      mesh: clientOf("client_request_admin", "client.request, an idle admin server on its mesh", adminMesh),
      startAdmin: async () => {
        admin ??= await startAdmin(adminMesh, { port: 0 });
      },
    },
    close: async () => {
      await admin?.close();
      await Promise.all([rawPool.close(), fetchPool.close(), requestPool.close(), mesh.close(), plainMesh.close(), adminMesh.close()]);
    },
  };
}

/** `client.request` on a mesh given the OpenTelemetry SDK's providers, the SDK's floor, and the SDK. */
export interface TracedVariant {
  readonly variant: Variant;
  /** Raw `Pool.request` with the same spans, trace headers and metric points written by hand: the SDK's cost alone. */
  readonly floor: Variant;
  /**
   * Raw `Pool.request` traced by `@opentelemetry/instrumentation-undici` under the same SDK (a CLIENT
   * span, the trace header and its duration histogram per request): what tracing costs without the mesh.
   * The instrumentation is on only during this variant's runs.
   */
  readonly instrumented: Variant;
  readonly sdk: BenchSdk;
  /** Closes the mesh and shuts the SDK down (its globals too). */
  close(): Promise<void>;
}

/**
 * Starts the SDK (registering its context manager and propagators globally), a second mesh with its
 * tracer and meter providers, and the SDK's floor on a pool of its own. Close it before the other variants run again: the globals stay registered
 * until then.
 *
 * @param origin - the backend, `http://127.0.0.1:<port>`
 * @param path - the request path
 * @param pool - pool settings, the same as the other variants'
 */
export function createTracedVariant(origin: string, path: string, pool: PoolOptions): TracedVariant {
  const url = new URL(origin);
  const registry = new MockRegistry({ [SERVICE]: [{ address: url.hostname, port: Number(url.port) }] });
  const sdk = startBenchSdk();
  const mesh = createMesh({ registry, pool, telemetry: { tracerProvider: sdk.tracerProvider, meterProvider: sdk.meterProvider } });
  const client = mesh.client(SERVICE);
  const floorPool = new Pool(origin, pool);
  const floorSend = sdkFloorSend(floorPool, url, path, SERVICE, sdk);
  const instrumentedPool = new Pool(origin, pool);
  // Made enabled (with `enabled: false` its hooks would stay silent after enable()), then off until its runs.
  const instrumentation = new UndiciInstrumentation();
  instrumentation.setTracerProvider(sdk.tracerProvider);
  instrumentation.setMeterProvider(sdk.meterProvider);
  instrumentation.disable();
  return {
    variant: {
      key: "client_request_otel",
      label: "mesh client.request, OpenTelemetry SDK",
      send: async () => {
        const { statusCode, body } = await client.request({ path });
        await body.text();
        expectOk(statusCode, "client_request_otel");
      },
    },
    floor: {
      key: "raw_request_otel",
      label: "undici Pool.request, the same telemetry by hand",
      send: async () => expectOk(await floorSend(), "raw_request_otel"),
    },
    instrumented: {
      key: "raw_request_instrumented",
      label: "undici Pool.request, instrumentation-undici",
      send: async () => {
        const { statusCode, body } = await instrumentedPool.request({ path, method: "GET" });
        await body.text();
        expectOk(statusCode, "raw_request_instrumented");
      },
      enter: () => instrumentation.enable(),
      leave: () => instrumentation.disable(),
    },
    sdk,
    close: async () => {
      instrumentation.disable();
      await Promise.all([mesh.close(), floorPool.close(), instrumentedPool.close()]);
      await sdk.shutdown();
    },
  };
}
