/**
 * The two services of the tracing example, each a node:http server with its own mesh:
 * `web` answers `/checkout` by calling `orders` through its mesh; `orders` has two instances, the
 * first of which fails its first request (so the trace shows a retry to the other one).
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { createMesh, type Mesh, type Registry } from "proxyless";

const tracer = trace.getTracer("tracing-example");

/** A running service instance: its server, its mesh (if it calls others), and how to stop it. */
export interface Instance {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Serves requests in the caller's trace: the incoming `traceparent` (and baggage) is extracted with
 * the global propagator and a SERVER span started under it (an HTTP server instrumentation, such as
 * `@opentelemetry/instrumentation-http`, does the same for you).
 */
function traced(name: string, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer.startSpan(`${req.method ?? "GET"} ${name}`, { kind: SpanKind.SERVER, attributes: { "http.request.method": req.method ?? "GET", "url.path": req.url ?? "/" } }, parent);
    context.with(trace.setSpan(parent, span), () => {
      handle(req, res)
        .catch((err: unknown) => {
          span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
          res.statusCode = 500;
          res.end();
        })
        .finally(() => {
          span.setAttribute("http.response.status_code", res.statusCode);
          span.end();
        });
    });
  };
}

async function listen(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Starts an `orders` instance; `failFirst` makes its first answer a 503. */
export async function startOrders(name: string, failFirst: boolean): Promise<Instance> {
  let failures = failFirst ? 1 : 0;
  const server = createServer(
    traced("orders", (_req, res) => {
      if (failures > 0) {
        failures--;
        res.writeHead(503).end("warming up");
        return Promise.resolve();
      }
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ instance: name, orders: [{ id: 42, tenant: propagation.getBaggage(context.active())?.getEntry("tenant")?.value ?? null }] }));
      return Promise.resolve();
    }),
  );
  const port = await listen(server);
  return { port, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * Starts `web`, which calls `orders` through its own mesh. Its random source always says 0, so round
 * robin starts at the first `orders` instance, the one that fails once: the example always shows a retry.
 */
export async function startWeb(registry: Registry): Promise<Instance & { readonly mesh: Mesh }> {
  const mesh = createMesh({ registry, service: "web", random: { next: () => 0 } });
  const server = createServer(
    traced("web", async (_req, res) => {
      const { statusCode, body } = await mesh.client("orders").request({ path: "/v1/orders" });
      res.setHeader("content-type", "application/json");
      res.statusCode = statusCode;
      res.end(JSON.stringify({ from: "web", orders: await body.json() }));
    }),
  );
  const port = await listen(server);
  return {
    port,
    mesh,
    stop: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await mesh.close();
    },
  };
}
