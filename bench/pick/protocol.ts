import type { PickCase } from "./cases.ts";

/** What the main thread asks one worker to measure. */
export interface CaseRequest {
  readonly case: PickCase;
  /** Picks per timed batch. */
  readonly batchSize: number;
  /** Timed batches in this worker. */
  readonly batches: number;
  /** Untimed picks before the first batch, for V8 to optimize the loop, in ms. */
  readonly warmupMs: number;
  /** Pickers built (and timed) before the picks, the first one cold. */
  readonly builds: number;
}

/** What a worker sends back. */
export interface CaseResult {
  readonly type: "result";
  /** The class of the picker the plugin built: shows which code path was measured. */
  readonly picker: string;
  /** The time of each `createPicker` call, in ms; the first was cold. */
  readonly buildMs: readonly number[];
  /** The time of each timed batch, in ms. */
  readonly batchMs: readonly number[];
  /** Sum of `pending` of every picked target in the timed batches: consumes the picks. */
  readonly pendingSum: number;
  /** The same over the warm-up picks (consumed so V8 keeps the warm-up). */
  readonly warmupPendingSum: number;
  /** Garbage collections that started during the timed batches. */
  readonly gcs: number;
}

function numbers(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === "number");
}

/**
 * Whether a worker message is a {@link CaseResult}.
 *
 * @param message - anything received from a worker
 */
export function isCaseResult(message: unknown): message is CaseResult {
  if (typeof message !== "object" || message === null) return false;
  const m = message as Partial<Record<keyof CaseResult, unknown>>;
  return (
    m.type === "result" &&
    typeof m.picker === "string" &&
    numbers(m.buildMs) &&
    numbers(m.batchMs) &&
    typeof m.pendingSum === "number" &&
    typeof m.warmupPendingSum === "number" &&
    typeof m.gcs === "number"
  );
}
