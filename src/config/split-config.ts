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

/**
 * Sticky splitting (a proxyless extension): the side is chosen by the hash of a header or cookie, so
 * one user stays on one side. Requests without it are split in turn as usual.
 */
export interface StickySplit {
  /** A header whose value picks the side (case-insensitive name). */
  readonly header?: string;
  /** A cookie whose value picks the side. */
  readonly cookie?: string;
}

/** Weighted splits of a service's traffic (Consul's `service-splitter`): the weights sum to 100. */
export interface SplitterConfig {
  /** The sides. */
  readonly splits: readonly SplitConfig[];
  /** Choose the side by a header's or cookie's hash instead of in turn. Give one of the two. */
  readonly sticky?: StickySplit;
}
