import { status as Status } from "@grpc/grpc-js";
import type { EndpointLoad } from "../../balancer/load.ts";

/**
 * Feeds a finished gRPC call to its endpoint's load (what least_request and peak_ewma read): UNAVAILABLE
 * and DEADLINE_EXCEEDED as failures, other statuses as round trips, except a cancelled call (a lost
 * hedge, a caller that gave up), which says nothing about the endpoint's speed, and a streaming response
 * (long-lived: no round-trip sample). The caller has already taken it off `pending`. @internal
 *
 * @param ms - how long the call took
 * @param now - the clock's time at its end
 */
export function recordLoad(load: EndpointLoad, code: Status, ms: number, now: number, streaming: boolean): void {
  if (code === Status.UNAVAILABLE || code === Status.DEADLINE_EXCEEDED) load.fail(ms, now);
  else if (code !== Status.CANCELLED && !streaming) load.observe(ms, now);
}
