import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where the Consul API samples are kept: `test/fixtures/consul-api/` (see its README for each file's source). */
const DIR = fileURLToPath(new URL("../fixtures/consul-api/", import.meta.url));

/**
 * One of Consul's documented samples, parsed. The contract tests hold FakeConsul and the decoders to
 * these files, copied value for value from Consul's documentation (the README beside them names the page
 * and commit of each).
 *
 * @param name - a file in test/fixtures/consul-api, such as `health-service.json`
 */
export function consulSample(name: string): unknown {
  return JSON.parse(readFileSync(DIR + name, "utf8"));
}
