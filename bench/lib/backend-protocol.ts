/** The body every backend response carries. */
export const BACKEND_BODY = "ok: proxyless overhead bench\n";

/** The message the backend process sends its parent once it listens. */
export interface BackendReady {
  readonly type: "ready";
  readonly port: number;
}

/**
 * Whether an IPC message is the backend's ready message.
 *
 * @param message - anything received over IPC
 */
export function isBackendReady(message: unknown): message is BackendReady {
  if (typeof message !== "object" || message === null) return false;
  const m = message as Partial<BackendReady>;
  return m.type === "ready" && typeof m.port === "number";
}
