// The OpenTelemetry SDK 3.x set-up of the package test's app (copied there as otel.mjs): a tracer provider
// with an in-memory exporter, the AsyncLocalStorage context manager and the W3C propagators, registered
// through the API (SDK 3.x has no NodeTracerProvider.register()).
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

export const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));

/** Flushes and stops the SDK. */
export function shutdown() {
  return provider.shutdown();
}
