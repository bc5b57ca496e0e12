import diagnostics from "node:diagnostics_channel";
import type { Endpoint } from "../endpoint/endpoint.ts";
import type { MeshError } from "../core/errors.ts";
import type { EndpointEjectedEvent } from "./mesh-events.ts";

/**
 * The names of the `node:diagnostics_channel` channels the mesh publishes on. Subscribe with
 * `diagnostics_channel.subscribe(channels.requestEnd, listener)`; a channel nobody listens to costs a
 * property read. The messages are described by the `*Message` types.
 *
 * @example
 * ```ts
 * import { subscribe } from "node:diagnostics_channel";
 * import { channels, type RequestEndMessage } from "proxyless";
 * subscribe(channels.requestEnd, (m) => {
 *   const end = m as RequestEndMessage;
 *   console.log(end.service, end.statusCode ?? end.error?.message, end.attempts, end.durationMs);
 * });
 * ```
 */
export const channels = Object.freeze({
  /** A call starts: {@link RequestStartMessage}. */
  requestStart: "proxyless:request:start",
  /** A call ends, at its response headers or its failure: {@link RequestEndMessage}. */
  requestEnd: "proxyless:request:end",
  /** An attempt's endpoint was picked: {@link PickMessage}. */
  pick: "proxyless:pick",
  /** An endpoint joined a service: {@link EndpointMessage}. */
  endpointAdded: "proxyless:endpoint:added",
  /** An endpoint left a service: {@link EndpointMessage}. */
  endpointRemoved: "proxyless:endpoint:removed",
  /** Outlier detection ejected an endpoint: {@link EndpointEjectedMessage}. */
  endpointEjected: "proxyless:endpoint:ejected",
  /** A service's configuration is in force: {@link ConfigAppliedMessage}. */
  configApplied: "proxyless:config:applied",
  /** A service's configuration was refused; the previous one serves: {@link ConfigRejectedMessage}. */
  configRejected: "proxyless:config:rejected",
  /** The registry failed for a service; the last good state serves: {@link RegistryErrorMessage}. */
  registryError: "proxyless:registry:error",
} as const);

/** What `proxyless:request:start` carries. The same object is published again, filled in, on `proxyless:request:end`. */
export interface RequestStartMessage {
  /** The service called. */
  readonly service: string;
  /** The service whose endpoints serve the call (another one when a route or split sends it there). */
  readonly target: string;
  /** HTTP method. */
  readonly method: string;
  /** The path sent, with its query string. */
  readonly path: string;
  /** When the call started, in ms on the mesh's clock. */
  readonly startedAt: number;
}

/** What `proxyless:request:end` carries: the start message with the outcome. */
export interface RequestEndMessage extends RequestStartMessage {
  /** The response status the caller got; undefined when the call failed. */
  readonly statusCode: number | undefined;
  /** Why the call failed; undefined when it got a response. */
  readonly error: Error | undefined;
  /** Attempts sent (retries and hedges included). */
  readonly attempts: number;
  /** How long the call took, until response headers or failure, in ms. */
  readonly durationMs: number;
}

/** What `proxyless:pick` carries. */
export interface PickMessage {
  /** The service whose endpoint was picked. */
  readonly service: string;
  /** The endpoint. */
  readonly endpoint: Endpoint;
  /** The balancer that picked it. */
  readonly policy: string;
  /** 0 for the first attempt, then 1, 2, ... (`http.request.resend_count`). */
  readonly resendCount: number;
  /** Whether the attempt is a hedge (sent while another is still running). */
  readonly hedge: boolean;
}

/** What `proxyless:endpoint:added` and `proxyless:endpoint:removed` carry. */
export interface EndpointMessage {
  /** The service. */
  readonly service: string;
  /** The endpoint that joined or left. */
  readonly endpoint: Endpoint;
}

/** What `proxyless:endpoint:ejected` carries: the mesh's `endpoint_ejected` event. */
export type EndpointEjectedMessage = EndpointEjectedEvent;

/** What `proxyless:config:applied` carries. */
export interface ConfigAppliedMessage {
  /** The service. */
  readonly service: string;
  /** The balancer now in use. */
  readonly policy: string;
  /** How many configurations the mesh has accepted for this service, this one included. */
  readonly version: number;
}

/** What `proxyless:config:rejected` carries. */
export interface ConfigRejectedMessage {
  /** The service. */
  readonly service: string;
  /** `ERR_INVALID_CONFIG`, naming the field at fault. */
  readonly error: MeshError;
}

/** What `proxyless:registry:error` carries. */
export interface RegistryErrorMessage {
  /** The service. */
  readonly service: string;
  /** What the registry reported. */
  readonly error: Error;
}

/** The channel objects, made once. @internal */
export const diag = {
  requestStart: diagnostics.channel(channels.requestStart),
  requestEnd: diagnostics.channel(channels.requestEnd),
  pick: diagnostics.channel(channels.pick),
  endpointAdded: diagnostics.channel(channels.endpointAdded),
  endpointRemoved: diagnostics.channel(channels.endpointRemoved),
  endpointEjected: diagnostics.channel(channels.endpointEjected),
  configApplied: diagnostics.channel(channels.configApplied),
  configRejected: diagnostics.channel(channels.configRejected),
  registryError: diagnostics.channel(channels.registryError),
} as const;
