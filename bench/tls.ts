/**
 * `npm run bench:tls`: what the mesh's mTLS costs against raw undici with the same TLS settings.
 *
 * A backend in a child process serves HTTPS and requires client certificates. Two variants send GETs to
 * it with 50 concurrent loops: a bare undici `Pool` with the client certificate, the CA and a SPIFFE ID
 * check (`checkServerIdentity`), and the mesh's `client.request` with `tls.identity` (which adds SNI,
 * the SPIFFE check and everything else the mesh does). Rounds alternate the order; the medians and the
 * ratio (mesh ÷ raw, paired per round) go to `bench/results/tls.json`. Target: ratio >= 0.90.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { PeerCertificate } from "node:tls";
import { Pool } from "undici";
import { createMesh, pemIdentity } from "proxyless";
import { MockRegistry, TestCertificateAuthority } from "proxyless/testing";
import { isBackendReady } from "./lib/backend-protocol.ts";
import { runPairedRounds } from "./lib/paired-rounds.ts";
import { round } from "./lib/stats.ts";
import { environment, readSettings } from "./lib/settings.ts";
import { writeJson } from "./lib/report.ts";

const OUTPUT = fileURLToPath(new URL("results/tls.json", import.meta.url));
const settings = readSettings();
const rounds = Math.max(2, settings.rounds);

const ca = await TestCertificateAuthority.create();
const [serverLeaf, clientLeaf] = await Promise.all([ca.issue({ uri: ca.spiffeId("bench") }), ca.issue({ uri: ca.spiffeId("client") })]);
const child = fork(fileURLToPath(new URL("tls-backend.ts", import.meta.url)), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
child.send({ cert: serverLeaf.certPem, key: serverLeaf.keyPem, ca: ca.rootPem });
async function backendPort(): Promise<number> {
  for (;;) {
    const [message] = (await once(child, "message")) as [unknown];
    if (isBackendReady(message)) return message.port;
  }
}
const port = await backendPort();

const expected = ca.spiffeId("bench");
const raw = new Pool(`https://127.0.0.1:${port}`, {
  ...settings.pool,
  connect: {
    cert: clientLeaf.certPem,
    key: clientLeaf.keyPem,
    ca: ca.rootPem,
    rejectUnauthorized: true,
    servername: "bench",
    checkServerIdentity: (_host: string, cert: PeerCertificate) => (cert.subjectaltname?.includes(`URI:${expected}`) === true ? undefined : new Error("wrong SPIFFE ID")),
  },
});
const mesh = createMesh({
  registry: new MockRegistry({ bench: [{ address: "127.0.0.1", port }] }),
  pool: settings.pool,
  tls: { identity: pemIdentity({ cert: clientLeaf.certPem, key: clientLeaf.keyPem, ca: ca.rootPem }) },
});
const client = mesh.client("bench");
const variants = {
  raw: async () => {
    const res = await raw.request({ path: settings.path, method: "GET", headers: { host: "bench" } });
    await res.body.dump();
  },
  mesh: async () => {
    const res = await client.request({ path: settings.path });
    await res.body.dump();
  },
};

try {
  const { raw: rawRow, mesh: meshRow, ratio, ratios } = await runPairedRounds(variants, settings, rounds, "req/s");
  console.log("\nvariant                                 req/s  CPU us/req  p50 ms  p99 ms");
  console.log(`undici Pool, mTLS (raw)              ${String(rawRow.rps).padStart(8)}  ${String(rawRow.cpu_us_per_req).padStart(10)}  ${String(rawRow.p50_ms).padStart(6)}  ${String(rawRow.p99_ms).padStart(6)}`);
  console.log(`mesh client.request, tls.identity    ${String(meshRow.rps).padStart(8)}  ${String(meshRow.cpu_us_per_req).padStart(10)}  ${String(meshRow.p50_ms).padStart(6)}  ${String(meshRow.p99_ms).padStart(6)}`);
  console.log(`\n${ratio >= 0.9 ? "MET    " : "NOT MET"}  mtls_throughput_ratio = ${ratio} (median of ${rounds} paired rounds, range ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}; target >= 0.90)`);
  await writeJson(OUTPUT, {
    summary: { mtls_throughput_ratio: ratio, mtls_added_cpu_us: round(meshRow.cpu_us_per_req - rawRow.cpu_us_per_req, 2) },
    variants: { raw: rawRow, mesh: meshRow },
    ratios: ratios.map((x) => round(x, 3)),
    settings: { ...settings, rounds },
    environment: environment(),
  });
  console.log(`\nwrote ${OUTPUT}`);
} finally {
  await mesh.close();
  await raw.close();
  child.disconnect();
}
