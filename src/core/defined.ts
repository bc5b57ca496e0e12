/**
 * Drops the keys whose value is undefined, so an object built from optional sources satisfies
 * `exactOptionalPropertyTypes`. @internal
 */
export function defined<T extends object>(value: { [K in keyof T]: T[K] | undefined }): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
