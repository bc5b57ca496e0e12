import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isMeshError } from "proxyless";
import { compileFilter } from "../src/config/filter-expression.ts";
import { consulSample } from "./helpers/consul-samples.ts";

const entry = { Service: { Tags: ["primary", "v1"], Meta: { version: "v1", zone: "eu-1" }, Port: 8000 }, Node: { Meta: { os: "linux" } } };

describe("Consul filter expressions", () => {
  for (const [expression, expected] of [
    ['Service.Meta.version == "v1"', true],
    ["Service.Meta.version == v1", true],
    ['Service.Meta.version != "v1"', false],
    ['"v1" in Service.Tags', true],
    ['"v2" not in Service.Tags', true],
    ['Service.Tags contains "primary"', true],
    ['Service.Tags not contains "primary"', false],
    ["Service.Meta.zone matches `^eu-`", true],
    ['Service.Meta.zone not matches "^us-"', true],
    ['"zone" in Service.Meta', true],
    ["Service.Meta.missing is empty", true],
    ["Service.Tags is not empty", true],
    ["Service.Port == 8000", true],
    ['Service.Meta.version == "v1" and "canary" in Service.Tags', false],
    ['Service.Meta.version == "v2" or "primary" in Service.Tags', true],
    ['not (Service.Meta.version == "v2" or "canary" in Service.Tags)', true],
    ['not Service.Meta.version == "v1"', false],
    ['Node.Meta.os == "linux" and (Service.Meta.zone == "us-1" or Service.Meta.zone == "eu-1")', true],
  ] as const) {
    it(`${expression} → ${expected}`, () => {
      assert.equal(compileFilter(expression)(entry), expected);
    });
  }

  it("matches the documented catalog filtering example", () => {
    const doc = consulSample("catalog-service.filter-example.json") as {
      filter: string;
      unfiltered: unknown[];
      filtered: unknown[];
    };
    assert.deepEqual(doc.unfiltered.filter(compileFilter(doc.filter)), doc.filtered);
  });

  for (const bad of ["", "Service.Tags contains", '"v1" in', "Service.Meta.version === v1", "(Service.Port == 1", 'Service.Meta.x matches "("', "Service.Port frobs 1"]) {
    it(`rejects ${JSON.stringify(bad)} with ERR_INVALID_CONFIG`, () => {
      assert.throws(() => compileFilter(bad), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /Invalid filter expression/.test(err.message));
    });
  }
});
