import { envInt } from "../lib/env.ts";
/** How a backend serves requests. */
export type ServerModel = "fifo_queue" | "unlimited";

/** One simulated situation: the backends, how they serve, and the offered load. */
export interface Scenario {
  /** `A`, `B` or `C`. */
  readonly id: string;
  /** One line for the report. */
  readonly title: string;
  /** `fifo_queue`: one request in service, the rest wait in line; `unlimited`: every request served at once. */
  readonly model: ServerModel;
  /** Mean service time of each backend, in ms (exponentially distributed). */
  readonly meanServiceMs: readonly number[];
  /** Poisson arrival rate, in requests per ms. */
  readonly arrivalRatePerMs: number;
  /** Index of the slow backend, if there is one. */
  readonly slowBackend: number | undefined;
}

/** The fixed parameters of the simulation. */
export interface SimSettings {
  /** Seed of every random stream. */
  readonly seed: number;
  /** Requests per run (one scenario, one policy). */
  readonly requests: number;
  /** Backends per scenario. */
  readonly backends: number;
  /** Mean service time of a healthy backend, in ms. */
  readonly fastMeanMs: number;
  /** Mean service time of the slow backend, in ms. */
  readonly slowMeanMs: number;
  /** Offered load as a share of the healthy backends' capacity. */
  readonly utilization: number;
}

/** Reads the settings; `LB_SIM_SEED` (42) and `LB_SIM_REQUESTS` (200000) may override the defaults. */
export function readSimSettings(): SimSettings {
  return {
    seed: envInt("LB_SIM_SEED", 42, 0) >>> 0,
    requests: envInt("LB_SIM_REQUESTS", 200_000, 1000),
    backends: 10,
    fastMeanMs: 10,
    slowMeanMs: 100,
    utilization: 0.7,
  };
}

/**
 * The three scenarios: A, one backend 10× slower with single-server FIFO queues; B, one backend with
 * 10× the latency and unlimited concurrency; C, equal backends with FIFO queues. The slow backend is
 * backend 0 (`b0`).
 *
 * @param settings - the simulation settings
 */
export function buildScenarios(settings: SimSettings): Scenario[] {
  const { backends, fastMeanMs, slowMeanMs, utilization } = settings;
  const oneSlow = Array.from({ length: backends }, (_, i) => (i === 0 ? slowMeanMs : fastMeanMs));
  const allFast = Array.from({ length: backends }, () => fastMeanMs);
  const healthyRate = (utilization * (backends - 1)) / fastMeanMs;
  return [
    {
      id: "A",
      title: `one backend 10x slower (${slowMeanMs} ms), single-server FIFO queues, ${utilization * 100}% of healthy capacity`,
      model: "fifo_queue",
      meanServiceMs: oneSlow,
      arrivalRatePerMs: healthyRate,
      slowBackend: 0,
    },
    {
      id: "B",
      title: `one backend with 10x the latency (${slowMeanMs} ms), unlimited concurrency`,
      model: "unlimited",
      meanServiceMs: oneSlow,
      arrivalRatePerMs: healthyRate,
      slowBackend: 0,
    },
    {
      id: "C",
      title: `${backends} equal backends (${fastMeanMs} ms), single-server FIFO queues, ${utilization * 100}% of capacity`,
      model: "fifo_queue",
      meanServiceMs: allFast,
      arrivalRatePerMs: (utilization * backends) / fastMeanMs,
      slowBackend: undefined,
    },
  ];
}
