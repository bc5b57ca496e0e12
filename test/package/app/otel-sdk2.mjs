// The OpenTelemetry SDK 2.x set-up of the package test's app (copied there as otel.mjs): a tracer provider
// with an in-memory exporter, registered the SDK 2.x way (NodeTracerProvider.register(): the global
// provider, the AsyncLocalStorage context manager and the W3C propagators).
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

export const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

/** Flushes and stops the SDK. */
export function shutdown() {
  return provider.shutdown();
}
