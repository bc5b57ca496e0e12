/**
 * One HTTP instance for `bench/chaos.ts`, run in its own process: an HTTP/1.1 keep-alive server on
 * 127.0.0.1, port 0, that answers every request 200 after a short service time, or misbehaves as the
 * parent tells it over IPC (503 at once, hang, flap, or SIGKILL itself). It reports its port, and every
 * POST's request id the moment the request arrives (bench/lib/chaos-protocol.ts). It exits when the
 * parent disconnects.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { BackendState, readBackendArgs, REQUEST_ID_HEADER, send } from "./lib/chaos-protocol.ts";

const args = readBackendArgs();
const state = new BackendState(args);
const okBody = Buffer.from("ok: proxyless chaos bench\n");
const okHeaders = { "content-type": "text/plain", "content-length": String(okBody.length) };
const failBody = Buffer.from("unavailable: proxyless chaos bench\n");
const failHeaders = { "content-type": "text/plain", "content-length": String(failBody.length) };

const server = createServer((req, res) => {
  const header = req.headers[REQUEST_ID_HEADER];
  const id = typeof header === "string" ? header : undefined;
  const post = req.method === "POST";
  const action = state.arrive(post, id);
  // Read any body, so the connection stays usable.
  req.resume();
  if (action === "fail") {
    res.writeHead(503, failHeaders);
    res.end(failBody);
    return;
  }
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    state.done(post);
  };
  // A hung request ends only when the client gives up (its socket closes).
  res.on("close", end);
  if (action === "hang") return;
  const answer = (): void => {
    if (res.destroyed) return;
    res.writeHead(200, okHeaders);
    res.end(okBody);
  };
  if (args.serviceMs > 0) setTimeout(answer, args.serviceMs);
  else answer();
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
// A hung request must stay hung: no server-side request timeout.
server.requestTimeout = 0;

server.listen(0, "127.0.0.1");
await once(server, "listening");
state.listen(() => {
  server.closeAllConnections();
  server.close();
});
send({ type: "ready", port: (server.address() as AddressInfo).port });
