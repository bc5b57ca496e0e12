import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where the Consul API samples are: `shared/consul-api/` beside this repository, as CI lays it out. */
const DIR = fileURLToPath(new URL("../../../shared/consul-api/", import.meta.url));

/**
 * One of Consul's documented samples, parsed. The contract tests hold FakeConsul and the decoders to
 * these files, so they read them where they are kept rather than from a copy that could drift.
 *
 * @param name - a file in shared/consul-api, such as `health-service.json`
 */
export function consulSample(name: string): unknown {
  const file = DIR + name;
  if (!existsSync(file)) {
    throw new Error(`Consul sample ${file} not found: run the tests from a checkout with shared/ beside it, as CI does`);
  }
  return JSON.parse(readFileSync(file, "utf8"));
}
