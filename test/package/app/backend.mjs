// A real HTTP server on 127.0.0.1 (port 0) for the package test's app: answers JSON naming itself and the
// path, and keeps what each request carried (path, Host, traceparent).
import { once } from "node:events";
import { createServer } from "node:http";

/**
 * Starts a backend.
 * @param {string} name - what it answers as
 */
export async function startBackend(name) {
  /** @type {{ path: string | undefined, host: string | undefined, traceparent: string | string[] | undefined }[]} */
  const requests = [];
  const server = createServer((req, res) => {
    requests.push({ path: req.url, host: req.headers.host, traceparent: req.headers.traceparent });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ name, path: req.url }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    requests,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
