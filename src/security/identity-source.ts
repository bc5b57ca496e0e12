import { MeshError } from "../core/errors.ts";
import type { Identity } from "./identity.ts";

/**
 * Where the mesh's identity comes from, kept current: files on disk ({@link fileIdentity}), Consul
 * Connect (`consulRegistry.connectIdentity(service)`), or your own implementation.
 */
export interface IdentitySource {
  /** The identity now, or undefined before the first one is known. */
  current(): Identity | undefined;
  /**
   * Resolves with the identity once there is one. A pending `ready()` keeps the process alive, as a
   * pending call does. `options.signal` gives up the wait: the promise rejects with its reason.
   */
  ready(options?: ReadyOptions): Promise<Identity>;
  /**
   * Calls `listener` with each new identity (a rotation), or with an error when a new one could not be
   * used; the last good identity stays in force.
   *
   * @returns a function that removes the listener
   */
  subscribe(listener: IdentityListener): () => void;
  /** Stops watching. */
  close(): Promise<void>;
}

/** Options for {@link IdentitySource.ready}. */
export interface ReadyOptions {
  /** Gives up the wait when aborted (the promise rejects with the signal's reason). */
  readonly signal?: AbortSignal | undefined;
}

/** Told of every new identity, or of a failure to get one. */
export type IdentityListener = (update: { readonly identity: Identity } | { readonly error: Error }) => void;

/**
 * The shared part of identity sources: holds the current identity, tells listeners, and keeps the last
 * good one when an update fails. @internal
 */
export class IdentityCell implements IdentitySource {
  #current: Identity | undefined;
  readonly #listeners = new Set<IdentityListener>();
  readonly #waiting = new Set<{ readonly resolve: (identity: Identity) => void; readonly reject: (error: unknown) => void }>();
  /** A ref'd handle while someone waits in ready(): a pending wait keeps the process alive. */
  #hold: ReturnType<typeof setInterval> | undefined;
  readonly #stop: () => Promise<void>;
  #closed = false;

  constructor(stop: () => Promise<void>) {
    this.#stop = stop;
  }

  current(): Identity | undefined {
    return this.#current;
  }

  ready(options: ReadyOptions = {}): Promise<Identity> {
    const now = this.#current;
    if (now !== undefined) return Promise.resolve(now);
    if (this.#closed) return Promise.reject(closedError());
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(asError(signal.reason));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => settle(() => reject(asError(signal?.reason)));
      const settle = (then: () => void): void => {
        this.#waiting.delete(waiter);
        signal?.removeEventListener("abort", onAbort);
        this.#release();
        then();
      };
      const waiter = { resolve: (identity: Identity) => settle(() => resolve(identity)), reject: (error: unknown) => settle(() => reject(asError(error))) };
      this.#waiting.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#hold ??= setInterval(() => undefined, 2 ** 31 - 1);
    });
  }

  #release(): void {
    if (this.#waiting.size > 0 || this.#hold === undefined) return;
    clearInterval(this.#hold);
    this.#hold = undefined;
  }

  subscribe(listener: IdentityListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    for (const waiter of [...this.#waiting]) waiter.reject(closedError());
    return this.#stop();
  }

  /** A new identity: in force from now on. */
  set(identity: Identity): void {
    const previous = this.#current;
    if (previous !== undefined && previous.certPem === identity.certPem && previous.keyPem === identity.keyPem && sameList(previous.trustPems, identity.trustPems)) return;
    this.#current = identity;
    for (const waiter of [...this.#waiting]) waiter.resolve(identity);
    for (const listener of this.#listeners) listener({ identity });
  }

  /** An update that could not be used: reported; the current identity stays. */
  fail(error: Error): void {
    for (const listener of this.#listeners) listener({ error });
  }
}

function closedError(): MeshError {
  return new MeshError("ERR_IDENTITY_UNAVAILABLE", "The identity source was closed before it had an identity.");
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `ERR_IDENTITY_UNAVAILABLE`: no identity within `ms`. @internal */
export function identityUnavailable(ms: number, cause?: unknown): MeshError {
  return new MeshError("ERR_IDENTITY_UNAVAILABLE", `The mesh's identity (its certificate) was not available within ${ms} ms, so no mTLS connection could be made. Check the identity source (files, or Consul Connect's leaf certificate).`, { cause });
}

/**
 * The source's identity, waited for at most `ms`: the timer decides (so a source whose `ready()` ignores
 * the signal cannot hold a wait forever), and the source is told through the signal to drop its waiter.
 * Rejects with `ERR_IDENTITY_UNAVAILABLE` at the limit. @internal
 *
 * @param keepAlive - whether the wait keeps the process alive (a caller waits on it)
 */
export function identityWithin(source: IdentitySource, ms: number, keepAlive: boolean): Promise<Identity> {
  const now = source.current();
  if (now !== undefined) return Promise.resolve(now);
  return new Promise<Identity>((resolve, reject) => {
    const giveUp = new AbortController();
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      const error = identityUnavailable(ms);
      giveUp.abort(error);
      reject(error);
    }, ms);
    if (!keepAlive) timer.unref();
    source.ready({ signal: giveUp.signal }).then(
      (identity) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(identity);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(err instanceof MeshError ? err : identityUnavailable(ms, err));
      },
    );
  });
}
