import type { ServerResponse } from "node:http";

/** Parses a Go boolean as Consul's query parameters do; undefined when it does not parse. @internal */
export function parseGoBool(text: string): boolean | undefined {
  if (["1", "t", "T", "true", "TRUE", "True", ""].includes(text)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(text)) return false;
  return undefined;
}

/** The headers every query response carries. @internal */
export function queryHeaders(index: number): Record<string, string> {
  return {
    "x-consul-index": String(index),
    "x-consul-knownleader": "true",
    "x-consul-lastcontact": "0",
    "x-consul-effective-consistency": "leader",
  };
}

/** Sends a JSON body. @internal */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Sends a plain-text body, as Consul does for every error. @internal */
export function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}
