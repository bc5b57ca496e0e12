/**
 * Which balancer a service uses and its settings. The `policy` names a registered balancer plugin
 * (`round_robin`, or one of your own); `config` is validated by that plugin.
 */
export interface LoadBalancerConfig {
  /** A registered balancer name, such as `round_robin`. */
  readonly policy: string;
  /** The plugin's own settings; validated by the plugin when the config is applied. */
  readonly config?: unknown;
}
