/**
 * The backend for `bench/overhead.ts`, run in its own process: an HTTP/1.1 keep-alive server on
 * 127.0.0.1, port 0, that answers every request 200 with a small fixed body. It reports its port to the
 * parent over IPC and exits when the parent disconnects.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { BACKEND_BODY, type BackendReady } from "./lib/backend-protocol.ts";

const body = Buffer.from(BACKEND_BODY);
const headers = { "content-type": "text/plain", "content-length": String(body.length) };

const server = createServer((req, res) => {
  // GET requests carry no body; resume() in case one does so the connection stays usable.
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
// Keep connections open across rounds: a variant waits idle while the other three run.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

server.listen(0, "127.0.0.1");
await once(server, "listening");
const ready: BackendReady = { type: "ready", port: (server.address() as AddressInfo).port };
process.send?.(ready);
process.on("disconnect", () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
