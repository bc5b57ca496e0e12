import {
  invalidConfig,
  roundRobin,
  type BalancerEnv,
  type BalancerPlugin,
  type PickTarget,
  type Picker,
} from "proxyless";

/** Settings of `prefer_tag`. */
export interface PreferTagConfig {
  /** Endpoints carrying this tag get the traffic while any of them is ready. */
  readonly tag: string;
}

/**
 * `prefer_tag`: round robin over the endpoints that carry a tag (say, those in this process's zone, or
 * a dedicated pool), and over all endpoints when none of them is ready.
 *
 * The two rules of a balancer plugin: validate config in `parseConfig` (throw `ERR_INVALID_CONFIG`
 * naming the field), and build an immutable picker in `createPicker` (called again whenever the
 * endpoints change, so never mutate `targets`).
 */
export const preferTag: BalancerPlugin<PreferTagConfig> = {
  name: "prefer_tag",
  parseConfig(raw: unknown, field: string): PreferTagConfig {
    const tag = (raw as { tag?: unknown } | undefined)?.tag;
    if (typeof tag !== "string" || tag === "") throw invalidConfig(`${field}.tag`, "expected the tag to prefer, such as \"zone-a\"");
    return { tag };
  },
  createPicker<T extends PickTarget>(targets: readonly T[], config: PreferTagConfig, env: BalancerEnv): Picker<T> {
    const preferred = targets.filter((t) => t.endpoint.tags.includes(config.tag));
    // Reuse a built-in for the actual rotation: plugins compose.
    return roundRobin.createPicker(preferred.length > 0 ? preferred : targets, {}, env);
  },
};
