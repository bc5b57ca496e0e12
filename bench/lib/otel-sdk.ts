import { context, propagation } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { BatchSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";

/**
 * An in-memory span exporter that keeps the last batch and a count: the SDK's InMemorySpanExporter keeps
 * every span, and tens of thousands of live spans per second would make the bench measure the garbage
 * collector rather than the mesh.
 */
class CountingSpanExporter implements SpanExporter {
  count = 0;
  last: ReadableSpan[] = [];
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.count += spans.length;
    this.last = spans;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The OpenTelemetry SDK as a service would run it, exporting to memory. */
export interface BenchSdk {
  readonly tracerProvider: TracerProvider;
  readonly meterProvider: MeterProvider;
  /** Spans exported so far. */
  exportedSpans(): number;
  /** Drops the metric exports held so far; call between runs. */
  trim(): void;
  /** Shuts the providers down and unregisters the global context manager and propagator. */
  shutdown(): Promise<void>;
}

/**
 * The SDK a production service would set up (what `@opentelemetry/sdk-node` assembles): the
 * AsyncLocalStorage context manager and W3C propagators registered globally, a batch span processor,
 * and a periodic metric reader; the exporters keep what they get in memory (spans: the last batch and
 * a count). The mesh under test is given the providers.
 */
export function startBenchSdk(): BenchSdk {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
  const spans = new CountingSpanExporter();
  const tracerProvider = new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: spans })] });
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const meterProvider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 1000 })] });
  return {
    tracerProvider,
    meterProvider,
    exportedSpans: () => spans.count,
    trim: () => metrics.reset(),
    shutdown: async () => {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      // The globals go too, so that what runs next in the process runs as it would without the SDK.
      context.disable();
      propagation.disable();
    },
  };
}
