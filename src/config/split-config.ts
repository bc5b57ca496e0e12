import type { HeaderChanges } from "./route-config.ts";

/** One side of a weighted split (Consul's `Splits[]` item). */
export interface SplitConfig {
  /** Share of requests in percent, 0.01 to 100, precision 0.01. */
  readonly weight: number;
  /** The service; default the split service itself. */
  readonly service?: string;
  /** A subset defined by that service's resolver. */
  readonly subset?: string;
  /** Changes to the request's headers on this side. */
  readonly requestHeaders?: HeaderChanges;
  /** Changes to the response's headers on this side. */
  readonly responseHeaders?: HeaderChanges;
}

/** Weighted splits of a service's traffic (Consul's `service-splitter`): the weights sum to 100. */
export interface SplitterConfig {
  /** The sides. */
  readonly splits: readonly SplitConfig[];
}
