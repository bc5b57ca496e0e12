/** One KV entry, as `GET /v1/kv/:key` shows it (Value in base64). */
export interface KvEntry {
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Key: string;
  Flags: number;
  Value: string | null;
}

/** The KV store of a fake Consul. @internal */
export class KvStore {
  readonly #entries = new Map<string, KvEntry>();

  /** Entries under a prefix (`recurse`) or the one key, sorted by key. */
  read(key: string, recurse: boolean): KvEntry[] {
    if (!recurse) {
      const entry = this.#entries.get(key);
      return entry === undefined ? [] : [entry];
    }
    return [...this.#entries.values()].filter((e) => e.Key.startsWith(key)).sort((a, b) => a.Key.localeCompare(b.Key));
  }

  /** Keys under a prefix, folded at `separator` as Consul does (`a/b/c` with `/` under `a/` gives `a/b/`). */
  keys(prefix: string, separator: string | undefined): string[] {
    const out = new Set<string>();
    for (const key of [...this.#entries.keys()].sort()) {
      if (!key.startsWith(prefix)) continue;
      const at = separator === undefined || separator === "" ? -1 : key.indexOf(separator, prefix.length);
      out.add(at < 0 ? key : key.slice(0, at + (separator?.length ?? 0)));
    }
    return [...out];
  }

  /** The index a read of `key` reports: the highest ModifyIndex under it, or `fallback`. */
  index(key: string, recurse: boolean, fallback: number): number {
    const entries = this.read(key, recurse);
    return entries.length === 0 ? fallback : Math.max(...entries.map((e) => e.ModifyIndex));
  }

  /** Writes a value; false on a `cas` mismatch (`cas=0`: only if absent). */
  put(key: string, value: Buffer, index: number, cas: number | undefined, flags: number | undefined): boolean {
    const previous = this.#entries.get(key);
    if (cas !== undefined && (previous?.ModifyIndex ?? 0) !== cas) return false;
    this.#entries.set(key, {
      CreateIndex: previous?.CreateIndex ?? index,
      ModifyIndex: index,
      LockIndex: previous?.LockIndex ?? 0,
      Key: key,
      Flags: flags ?? previous?.Flags ?? 0,
      Value: value.length === 0 ? null : value.toString("base64"),
    });
    return true;
  }

  /** Deletes a key (or every key under it); false on a `cas` mismatch. */
  delete(key: string, recurse: boolean, cas: number | undefined): boolean {
    if (cas !== undefined && (this.#entries.get(key)?.ModifyIndex ?? 0) !== cas) return false;
    for (const k of [...this.#entries.keys()]) if (k === key || (recurse && k.startsWith(key))) this.#entries.delete(k);
    return true;
  }

  /** Forgets everything. */
  clear(): void {
    this.#entries.clear();
  }
}
