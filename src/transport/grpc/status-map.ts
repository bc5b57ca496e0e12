import { status as Status } from "@grpc/grpc-js";
import type { MeshError } from "../../core/errors.ts";

/**
 * The HTTP status a gRPC status stands for, as Envoy and grpc-gateway map them: the mesh's retry
 * conditions, outlier detection and breaker read gRPC outcomes through it (UNAVAILABLE is a 503, a
 * gateway error; RESOURCE_EXHAUSTED a 429; INTERNAL, UNKNOWN and DATA_LOSS 500s). @internal
 */
export function httpEquivalent(code: Status): number {
  switch (code) {
    case Status.OK:
      return 200;
    case Status.CANCELLED:
      return 499;
    case Status.INVALID_ARGUMENT:
    case Status.FAILED_PRECONDITION:
    case Status.OUT_OF_RANGE:
      return 400;
    case Status.UNAUTHENTICATED:
      return 401;
    case Status.PERMISSION_DENIED:
      return 403;
    case Status.NOT_FOUND:
      return 404;
    case Status.ALREADY_EXISTS:
    case Status.ABORTED:
      return 409;
    case Status.RESOURCE_EXHAUSTED:
      return 429;
    case Status.UNIMPLEMENTED:
      return 501;
    case Status.UNAVAILABLE:
      return 503;
    case Status.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500; // UNKNOWN, INTERNAL, DATA_LOSS
  }
}

/** The gRPC status a call ends with when the mesh refuses it before any attempt. @internal */
export function grpcStatusOf(error: MeshError): Status {
  switch (error.code) {
    case "ERR_TIMEOUT":
      return Status.DEADLINE_EXCEEDED;
    case "ERR_NO_ROUTE":
      return Status.UNIMPLEMENTED;
    case "ERR_INVALID_CONFIG":
    case "ERR_INVALID_SERVICE_NAME":
      return Status.INVALID_ARGUMENT;
    default:
      // No endpoints, an unknown service, an open breaker, full limits, a closed mesh: as Envoy says it.
      return Status.UNAVAILABLE;
  }
}

/** The trailing metadata key that carries the mesh's error code when the mesh ended a call. */
export const ERROR_CODE_KEY = "x-proxyless-error-code";
