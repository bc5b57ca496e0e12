import { readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import type { EndpointSet } from "../../endpoint/endpoint-set.ts";
import type { EndpointInput } from "../../endpoint/endpoint.ts";

interface CachedService {
  readonly savedAt: string;
  readonly endpoints: EndpointInput[];
}

interface CacheFile {
  readonly version: 1;
  readonly services: Record<string, CachedService>;
}

/**
 * The last endpoints each service had, kept in a file, so that a process restarted while Consul is
 * unreachable still has somewhere to send requests. Written after each change (atomically: a temporary
 * file, then a rename), read once at start. A file that cannot be read or parsed is reported and left
 * alone until the next write replaces it. @internal
 */
export class SnapshotCache {
  readonly #file: string;
  readonly #onError: (error: Error) => void;
  readonly #services: Record<string, CachedService>;
  #writing: Promise<void> = Promise.resolve();
  #dirty = false;
  /** The services this process saved: a write keeps the other services already in the file. */
  readonly #mine = new Set<string>();
  #writes = 0;

  /**
   * @param file - the cache file's path
   * @param onError - told when the file cannot be read or written
   */
  constructor(file: string, onError: (error: Error) => void) {
    this.#file = file;
    this.#onError = onError;
    this.#services = this.#load();
  }

  /**
   * The cached endpoints of a service, if any.
   *
   * @param service - a service name
   */
  get(service: string): { readonly endpoints: EndpointInput[]; readonly savedAt: string } | undefined {
    return this.#services[service];
  }

  /**
   * Records a service's endpoints and writes the file soon (writes are serialized and coalesced).
   *
   * @param service - a service name
   * @param set - its endpoints
   */
  save(service: string, set: EndpointSet): Promise<void> {
    this.#services[service] = {
      savedAt: new Date().toISOString(),
      endpoints: set.all.map((e) => ({
        id: e.id,
        address: e.address,
        port: e.port,
        weights: e.weights,
        health: e.health,
        tags: [...e.tags],
        meta: { ...e.meta },
      })),
    };
    this.#mine.add(service);
    this.#dirty = true;
    this.#writing = this.#writing.then(() => this.#write());
    return this.#writing;
  }

  async #write(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    // Another registry (or process) may share the file: keep its services, replace ours.
    const services: Record<string, CachedService> = { ...this.#readServices(false) };
    for (const name of this.#mine) {
      const entry = this.#services[name];
      if (entry !== undefined) services[name] = entry;
    }
    const body: CacheFile = { version: 1, services };
    const temporary = `${this.#file}.${process.pid}.${++this.#writes}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(temporary, JSON.stringify(body));
      await rename(temporary, this.#file);
    } catch (err) {
      this.#onError(new Error(`could not write the cache file ${this.#file}: ${(err as Error).message}`, { cause: err }));
    }
  }

  #load(): Record<string, CachedService> {
    return this.#readServices(true);
  }

  /** The services in the file; problems are reported when `report`, and read as an empty file. */
  #readServices(report: boolean): Record<string, CachedService> {
    let text: string;
    try {
      text = readFileSync(this.#file, "utf8");
    } catch (err) {
      if (report && (err as NodeJS.ErrnoException).code !== "ENOENT") {
        this.#onError(new Error(`could not read the cache file ${this.#file}: ${(err as Error).message}`, { cause: err }));
      }
      return {};
    }
    try {
      const parsed = JSON.parse(text) as Partial<CacheFile>;
      if (parsed.version !== 1 || parsed.services === undefined || typeof parsed.services !== "object") throw new Error("not a proxyless cache file (version 1)");
      return { ...parsed.services };
    } catch (err) {
      if (report) this.#onError(new Error(`ignoring the cache file ${this.#file}: ${(err as Error).message}`, { cause: err }));
      return {};
    }
  }
}
