/** Slow start settings, validated. @internal */
export interface SlowStart {
  /** How long an endpoint's weight ramps up, in ms. */
  readonly window: number;
  /** The ramp's shape: 1 is linear, higher starts slower. */
  readonly aggression: number;
  /** The weight an endpoint starts at, in percent of its full weight. */
  readonly minWeightPercent: number;
}

/**
 * Envoy's slow-start factor: `max(minWeightPercent / 100, (elapsed / window)^(1 / aggression))` while an
 * endpoint that joined a running service is younger than the window, 1 otherwise. @internal
 */
export function slowStartFactor(slowStart: SlowStart | undefined, addedAt: number | undefined, now: number): number {
  if (slowStart === undefined || addedAt === undefined) return 1;
  const elapsed = now - addedAt;
  if (elapsed >= slowStart.window) return 1;
  const ramp = Math.pow(Math.max(0, elapsed) / slowStart.window, 1 / slowStart.aggression);
  return Math.max(slowStart.minWeightPercent / 100, ramp);
}
