import { request } from "node:https";
import type { Identity } from "proxyless";

/** What came back from a raw request. */
export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/**
 * Sends `method target` over mTLS with `identity`'s client certificate, the target written on the wire
 * exactly as given (`/public/../admin`, `/admin#frag`, `http://host/admin`): what a hostile caller sends,
 * not what a well-behaved client would make of it.
 */
export function rawMtls(port: number, identity: Identity, target: string, method = "GET"): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path: target,
        cert: identity.certPem,
        key: identity.keyPem,
        ca: [...identity.trustPems],
        agent: false,
        // The server's leaf names a SPIFFE ID, not 127.0.0.1; its chain is still verified.
        checkServerIdentity: () => undefined,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}
