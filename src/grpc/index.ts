/**
 * proxyless/grpc: the mesh for `@grpc/grpc-js` clients (an optional peer dependency). See docs/grpc.md.
 *
 * @module proxyless/grpc
 */
export { grpcMesh, GrpcMesh, type GrpcMeshOptions, type GrpcClientConstructor } from "./grpc-mesh.ts";
export { ERROR_CODE_KEY } from "../transport/grpc/status-map.ts";
export { SCHEME } from "../transport/grpc/resolver.ts";
