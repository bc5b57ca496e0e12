import { computeFigures, type PolicyFigures } from "./figures.ts";
import { ORACLE, oracleChooser, QUEUE_LENGTH_ORACLE, queueLengthOracleChooser } from "./oracle.ts";
import { pickerChooser, type PolicyRun } from "./picker-chooser.ts";
import type { Scenario, SimSettings } from "./scenarios.ts";
import { simulate } from "./simulate.ts";
import { createWorkload, STREAM, streamSeed } from "./workload.ts";

/** One scenario's results: every policy, the weaker queue-length oracle, then the reference oracle. */
export interface ScenarioResult {
  readonly scenario: Scenario;
  /** The built-in policies, then {@link QUEUE_LENGTH_ORACLE}. */
  readonly policies: readonly PolicyFigures[];
  /** The reference oracle (remaining work). */
  readonly oracle: PolicyFigures;
}

/**
 * Runs every policy and both oracles over the same workload in one scenario. Each gets a fresh set of
 * targets and a random source seeded alike.
 *
 * @param scenario - the scenario
 * @param settings - seed and request count
 * @param policies - built-in balancers with their configs
 */
export function runScenario(scenario: Scenario, settings: SimSettings, policies: readonly PolicyRun[]): ScenarioResult {
  const workload = createWorkload(settings.requests, scenario.arrivalRatePerMs, settings.seed);
  const pickerSeed = streamSeed(settings.seed, STREAM.picker);
  const figures = policies.map((run) =>
    computeFigures(
      run.label,
      scenario,
      simulate(scenario, workload, pickerSeed, (sim) => pickerChooser(run.policy, sim, workload.hashes, run.config)),
    ),
  );
  figures.push(
    computeFigures(QUEUE_LENGTH_ORACLE, scenario, simulate(scenario, workload, pickerSeed, queueLengthOracleChooser)),
  );
  const oracle = computeFigures(ORACLE, scenario, simulate(scenario, workload, pickerSeed, oracleChooser));
  return { scenario, policies: figures, oracle };
}
