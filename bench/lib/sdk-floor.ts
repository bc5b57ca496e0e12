import { context, propagation, trace, SpanKind, type Attributes } from "@opentelemetry/api";
import type { Pool } from "undici";
import type { BenchSdk } from "./otel-sdk.ts";

/** The HTTP conventions' duration buckets, as the mesh gives them. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/**
 * One GET on a raw undici pool that records, by hand and with nothing else around it, what the mesh
 * records for a traced `client.request` of one attempt with the default layout (no call span): a
 * CLIENT span under the active one (7 attributes), `traceparent` (and baggage, when there is any) in the
 * request headers, the status code on the span, and one point on each of two duration histograms (4
 * attributes). Its CPU over raw `Pool.request` is what the OpenTelemetry SDK costs for that output: the
 * floor under any library that emits it, the mesh included.
 *
 * @param pool - the raw pool
 * @param origin - the backend the pool sends to (the peer on the attempt's span)
 * @param path - the request path
 * @param service - the name the spans and points carry
 * @param sdk - the SDK to record to
 */
export function sdkFloorSend(pool: Pool, origin: URL, path: string, service: string, sdk: BenchSdk): () => Promise<number> {
  const tracer = sdk.tracerProvider.getTracer("bench-sdk-floor", "1");
  const meter = sdk.meterProvider.getMeter("bench-sdk-floor", "1");
  const advice = { advice: { explicitBucketBoundaries: BUCKETS } };
  const attemptDuration = meter.createHistogram("bench.floor.request.duration", { unit: "s", ...advice });
  const callDuration = meter.createHistogram("bench.floor.call.duration", { unit: "s", ...advice });
  const points = new Map<number, Attributes>();
  const pointAttributes = (status: number): Attributes => {
    let attrs = points.get(status);
    if (attrs === undefined) {
      attrs = Object.freeze({ "server.address": service, "server.port": 80, "http.request.method": "GET", "http.response.status_code": status });
      points.set(status, attrs);
    }
    return attrs;
  };
  const url = `http://${service}${path}`;
  const peerAddress = origin.hostname;
  const peerPort = Number(origin.port);
  const endpoint = origin.host;
  return async () => {
    const start = performance.now();
    const parent = context.active();
    const attempt = tracer.startSpan(
      "GET",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "http.request.method": "GET",
          "url.full": url,
          "server.address": service,
          "server.port": 80,
          "network.peer.address": peerAddress,
          "network.peer.port": peerPort,
          "proxyless.endpoint": endpoint,
        },
      },
      parent,
    );
    const headers: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent, attempt), headers);
    const { statusCode, body } = await pool.request({ path, method: "GET", headers });
    const attrs = pointAttributes(statusCode);
    attempt.setAttribute("http.response.status_code", statusCode);
    attempt.end();
    attemptDuration.record((performance.now() - start) / 1000, attrs);
    callDuration.record((performance.now() - start) / 1000, attrs);
    await body.text();
    return statusCode;
  };
}
