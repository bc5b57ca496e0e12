import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, basename } from "node:path";
import { invalidConfig } from "../core/errors.ts";
import { parseIdentity } from "./identity.ts";
import { IdentityCell, type IdentitySource } from "./identity-source.ts";

/** Files that hold the mesh's identity. */
export interface FileIdentityOptions {
  /** The certificate (chain), PEM. */
  readonly certFile: string;
  /** Its private key, PEM. */
  readonly keyFile: string;
  /** The trust bundle: CA certificates, PEM. */
  readonly caFile: string;
  /** Watch the files and reload them when they change. Default true. */
  readonly watch?: boolean;
  /** How long to wait after a change before reading, so a rotation that writes three files is read once, in ms. Default 100. */
  readonly settleMs?: number;
}

/**
 * An identity from PEM files (a certificate, its key and a CA bundle), reloaded when they change: cert-manager,
 * Vault agent or a Kubernetes secret (its symlink swap included). A change that cannot be used (a key that
 * does not match yet, a certificate that does not parse) is reported and the last good identity stays;
 * the next change is read again.
 *
 * @example
 * ```ts
 * const mesh = createMesh({ registry, service: "web", tls: { identity: fileIdentity({ certFile: "/certs/tls.crt", keyFile: "/certs/tls.key", caFile: "/certs/ca.crt" }) } });
 * ```
 */
export function fileIdentity(options: FileIdentityOptions): IdentitySource {
  for (const key of ["certFile", "keyFile", "caFile"] as const) {
    if (typeof options[key] !== "string" || options[key] === "") throw invalidConfig(`tls.identity.${key}`, "expected a file path");
  }
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const cell = new IdentityCell(() => {
    closed = true;
    clearTimeout(timer);
    for (const w of watchers) w.close();
    return Promise.resolve();
  });
  const load = async (): Promise<void> => {
    try {
      const [cert, key, ca] = await Promise.all([readFile(options.certFile, "utf8"), readFile(options.keyFile, "utf8"), readFile(options.caFile, "utf8")]);
      if (!closed) cell.set(parseIdentity(cert, key, ca));
    } catch (err) {
      if (!closed) cell.fail(err as Error);
    }
  };
  void load();
  if (options.watch !== false) {
    const settle = options.settleMs ?? 100;
    const names = new Set([options.certFile, options.keyFile, options.caFile].map((f) => basename(f)));
    for (const dir of new Set([options.certFile, options.keyFile, options.caFile].map((f) => dirname(f)))) {
      // The directory, not the files: a rename or a symlink swap replaces the file a file watch holds.
      let w: FSWatcher;
      try {
        w = watch(dir, { persistent: false }, (_event, name) => {
          if (name !== null && !names.has(name) && !name.startsWith("..")) return;
          clearTimeout(timer);
          timer = setTimeout(() => void load(), settle);
          timer.unref();
        });
      } catch (err) {
        for (const other of watchers) other.close();
        throw invalidConfig("tls.identity", `cannot watch the directory ${JSON.stringify(dir)} of the identity files (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the paths, or pass watch: false`, { cause: err });
      }
      w.on("error", (err) => cell.fail(err));
      watchers.push(w);
    }
  }
  return cell;
}
