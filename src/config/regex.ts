/**
 * Compiles a regular expression written for Consul (Envoy uses RE2) to a JavaScript one that must match
 * the whole value. RE2's `(?P<name>` is JavaScript's `(?<name>`. @internal
 */
export function compileRegex(source: string, flags = ""): RegExp {
  return new RegExp(`^(?:${source.replaceAll("(?P<", "(?<")})$`, flags);
}
