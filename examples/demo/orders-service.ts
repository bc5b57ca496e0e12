import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One running instance of the demo `orders` service. */
export interface OrdersInstance {
  /** Instance id, such as `orders-1`. */
  readonly id: string;
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Stops accepting connections and closes the open ones. */
  stop(): Promise<void>;
}

/**
 * Starts a tiny `orders` service on 127.0.0.1 (port chosen by the OS). It answers `GET /v1/orders/:id`
 * with JSON naming the instance, after a short simulated processing time.
 *
 * @param id - the instance id, returned in the `x-instance` header
 * @param workMs - simulated processing time per request
 */
export async function startOrdersInstance(id: string, workMs: number): Promise<OrdersInstance> {
  const server: Server = createServer((req, res) => {
    setTimeout(() => {
      res.setHeader("content-type", "application/json");
      res.setHeader("x-instance", id);
      res.end(JSON.stringify({ order: req.url?.split("/").pop(), servedBy: id }));
    }, workMs);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    id,
    port: (server.address() as AddressInfo).port,
    async stop() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
