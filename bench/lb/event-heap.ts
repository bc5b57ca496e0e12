/**
 * A binary min-heap of events keyed by time, for the discrete-event simulation. Each event carries an
 * integer payload (a request index); events at the same time come out in the order they went in, so a
 * run is deterministic. Arrays grow by doubling; push and pop are O(log n) and allocate nothing else.
 */
export class EventHeap {
  #times = new Float64Array(1024);
  #seqs = new Float64Array(1024);
  #payloads = new Int32Array(1024);
  #size = 0;
  #seq = 0;

  /** Events waiting. */
  get size(): number {
    return this.#size;
  }

  /** The time of the earliest event; `Infinity` when there is none. */
  peekTime(): number {
    return this.#size === 0 ? Infinity : this.#times[0]!;
  }

  /**
   * Adds an event.
   *
   * @param time - when it happens
   * @param payload - an integer carried with it
   */
  push(time: number, payload: number): void {
    if (this.#size === this.#times.length) this.#grow();
    const seq = this.#seq++;
    const times = this.#times;
    const seqs = this.#seqs;
    const payloads = this.#payloads;
    let i = this.#size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      payloads[i] = payloads[parent]!;
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    payloads[i] = payload;
  }

  /**
   * Removes the earliest event and returns its payload. Read its time with {@link peekTime} first.
   *
   * @throws Error when the heap is empty
   */
  pop(): number {
    if (this.#size === 0) throw new Error("pop from an empty event heap");
    const times = this.#times;
    const seqs = this.#seqs;
    const payloads = this.#payloads;
    const top = payloads[0]!;
    const n = --this.#size;
    if (n === 0) return top;
    const time = times[n]!;
    const seq = seqs[n]!;
    const payload = payloads[n]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && (times[right]! < times[child]! || (times[right] === times[child] && seqs[right]! < seqs[child]!))) {
        child = right;
      }
      const ct = times[child]!;
      if (time < ct || (time === ct && seq < seqs[child]!)) break;
      times[i] = ct;
      seqs[i] = seqs[child]!;
      payloads[i] = payloads[child]!;
      i = child;
    }
    times[i] = time;
    seqs[i] = seq;
    payloads[i] = payload;
    return top;
  }

  #grow(): void {
    const size = this.#times.length * 2;
    const times = new Float64Array(size);
    const seqs = new Float64Array(size);
    const payloads = new Int32Array(size);
    times.set(this.#times);
    seqs.set(this.#seqs);
    payloads.set(this.#payloads);
    this.#times = times;
    this.#seqs = seqs;
    this.#payloads = payloads;
  }
}
