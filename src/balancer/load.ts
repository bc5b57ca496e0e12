/**
 * Load of one endpoint, kept apart from any pick algorithm: the transport counts requests in flight and
 * feeds round-trip times; balancers only read. Attached to the endpoint handle, so it survives picker
 * swaps. The round-trip estimate is a peak-sensitive EWMA (Finagle, Linkerd): a slower sample replaces
 * the estimate at once, a faster one blends in, and with no samples the estimate decays towards zero so
 * an endpoint that was slow is tried again later.
 */
export class EndpointLoad {
  /** Requests sent and not yet finished. */
  pending = 0;
  /** Time constant of the decay, in ms; set by the balancer that reads the estimate. Default 10 s. */
  decayMs = 10_000;
  /**
   * The round trip charged for a request that failed before any response (connection refused or reset,
   * timeout), in ms; set by the balancer. Default 1000. Without it an endpoint that fails fast would look
   * cheaper than a healthy one and draw more traffic.
   */
  failurePenaltyMs = 1000;
  #estimate = 0;
  #stamp = 0;
  #samples = 0;
  #failures = 0;

  /** Round-trip samples seen so far: attempts that got a response or failed before one. */
  get samples(): number {
    return this.#samples;
  }

  /** Attempts that failed: before any response (each a penalty sample), or with a 5xx (see {@link EndpointLoad.answeredWithError}). */
  get failures(): number {
    return this.#failures;
  }

  /** Counts an attempt whose answer was a server error (5xx, or the gRPC status that maps to one): a failure that still gave a round-trip sample. */
  answeredWithError(): void {
    this.#failures++;
  }

  /**
   * Records one round-trip time.
   *
   * @param rttMs - the measured time, in ms
   * @param now - the clock's time when it was measured
   */
  observe(rttMs: number, now: number): void {
    if (this.#samples === 0 || rttMs > this.#estimate) {
      this.#estimate = rttMs;
    } else {
      const decay = Math.exp(-(now - this.#stamp) / this.decayMs);
      this.#estimate = this.#estimate * decay + rttMs * (1 - decay);
    }
    this.#stamp = now;
    this.#samples++;
  }

  /**
   * Records a request that failed before any response: a sample of at least `failurePenaltyMs`.
   *
   * @param elapsedMs - how long the request took to fail
   * @param now - the clock's time
   */
  fail(elapsedMs: number, now: number): void {
    this.#failures++;
    this.observe(elapsedMs > this.failurePenaltyMs ? elapsedMs : this.failurePenaltyMs, now);
  }

  /** The clock's time of the last sample. */
  get stamp(): number {
    return this.#stamp;
  }

  /**
   * The estimate decayed to `reference` as if it were now, scaled by the common factor that every
   * endpoint's estimate shares at any real time: comparing two endpoints' values at the same reference
   * gives the same order as comparing them at the real time, without reading the clock. Only for
   * endpoints with samples, and the same `decayMs`.
   *
   * @param reference - any time, usually another endpoint's {@link EndpointLoad.stamp}
   */
  relativeRtt(reference: number): number {
    const exponent = (this.#stamp - reference) / this.decayMs;
    return this.#estimate * Math.exp(exponent > 700 ? 700 : exponent < -700 ? -700 : exponent);
  }

  /**
   * The round-trip estimate at `now`, decayed since the last sample; `fallback` when there is none.
   *
   * @param now - the clock's time
   * @param fallback - the estimate for an endpoint with no samples, in ms
   */
  rtt(now: number, fallback: number): number {
    if (this.#samples === 0) return fallback;
    const elapsed = now - this.#stamp;
    return elapsed <= 0 ? this.#estimate : this.#estimate * Math.exp(-elapsed / this.decayMs);
  }
}
