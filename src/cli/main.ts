#!/usr/bin/env node
/**
 * The `proxyless` command (the package's `bin`): `check`, `explain` and `status`. See docs/cli.md.
 *
 * @packageDocumentation
 */
import { readFileSync } from "node:fs";
import { runCli } from "./run-cli.ts";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { readonly version: string };
process.exitCode = await runCli(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), env: process.env }, version);
