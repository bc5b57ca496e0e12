/**
 * The backend for `bench/tls.ts`, run in its own process: an HTTPS server on 127.0.0.1 that requires
 * client certificates (mTLS) and answers every request 200 with a small fixed body. It gets its
 * certificate, key and CA from the parent over IPC, reports its port, and exits when the parent
 * disconnects.
 */
import { once } from "node:events";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { BACKEND_BODY, type BackendReady } from "./lib/backend-protocol.ts";

interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

const [material] = (await once(process, "message")) as [TlsMaterial];
const body = Buffer.from(BACKEND_BODY);
const headers = { "content-type": "text/plain", "content-length": String(body.length) };
const server = createServer({ cert: material.cert, key: material.key, ca: material.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
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
