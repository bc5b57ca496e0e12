/**
 * `proxyless/admin`: a read-only admin server for a mesh, for operators and the CLI.
 *
 * @packageDocumentation
 */
export { startAdmin, type AdminOptions, type AdminServer } from "./admin-server.ts";
export type { AdminEvent } from "./event-ring.ts";
