import { invalidConfig } from "./errors.ts";

/**
 * Checks that `raw` is a plain object (or undefined, read as `{}`) with no keys outside `allowed`.
 * Unknown keys are rejected so that a typo fails loudly instead of being ignored. @internal
 */
export function expectOptions(raw: unknown, field: string, allowed: readonly string[]): Readonly<Record<string, unknown>> {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw invalidConfig(field, `expected an object, got ${describe(raw)}`);
  }
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) {
      const known = allowed.length === 0 ? "it takes no options" : `known keys: ${allowed.join(", ")}`;
      throw invalidConfig(`${field}.${key}`, `unknown option (${known})`);
    }
  }
  return raw as Readonly<Record<string, unknown>>;
}

/** Reads an optional number in [min, max]; integers only when `integer`. @internal */
export function optionalNumber(
  value: unknown,
  field: string,
  limits: { readonly min: number; readonly max?: number; readonly integer?: boolean },
): number | undefined {
  if (value === undefined) return undefined;
  const max = limits.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof value !== "number" || !Number.isFinite(value) || value < limits.min || value > max) {
    throw invalidConfig(field, `expected a number from ${limits.min} to ${max}, got ${describe(value)}`);
  }
  if (limits.integer === true && !Number.isInteger(value)) {
    throw invalidConfig(field, `expected an integer, got ${value}`);
  }
  return value;
}

/** Reads an optional value that must be one of `allowed`. @internal */
export function optionalChoice<const T extends string>(value: unknown, field: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw invalidConfig(field, `expected one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${describe(value)}`);
  }
  return value as T;
}

/** A short description of a value for error messages. @internal */
export function describe(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
    case "boolean":
    case "bigint":
    case "undefined":
      return String(value);
    case "symbol":
      return value.toString();
    case "function":
      return "a function";
    case "object":
      return value === null ? "null" : Array.isArray(value) ? "an array" : "an object";
  }
}
