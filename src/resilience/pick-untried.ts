import type { PickContext, Picker } from "../balancer/picker.ts";
import type { PoolHandle } from "../upstream/pool-handle.ts";

/**
 * Picks an endpoint, preferring one not tried yet by this call (Envoy's previous-hosts predicate): up
 * to three picks, then whatever the balancer gives (a hash balancer keeps choosing the same one). @internal
 */
export function pickUntried<H extends PoolHandle>(picker: Picker<H>, context: PickContext, tried: ReadonlySet<H>): H {
  let handle = picker.pick(context);
  for (let i = 0; i < 3 && tried.size > 0 && tried.has(handle); i++) handle = picker.pick(context);
  return handle;
}
