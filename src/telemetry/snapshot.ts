/** What {@link Mesh.snapshot} returns: the mesh's live state, as plain JSON. */
export interface MeshSnapshot {
  /** This process's own service name, or null. */
  readonly service: string | null;
  /** When the snapshot was taken (wall clock, ISO 8601). */
  readonly takenAt: string;
  /** The registry's kind (its class name: `ConsulRegistry`, `StaticRegistry`, ...). */
  readonly registry: string;
  /** Every upstream service the mesh watches, by name. */
  readonly services: readonly ServiceSnapshot[];
}

/** One upstream service in a {@link MeshSnapshot}. */
export interface ServiceSnapshot {
  /** The service name. */
  readonly name: string;
  /** Discovery: `pending` (no answer yet), `known`, `missing` (not in the registry) or `closed`. */
  readonly status: "pending" | "known" | "missing" | "closed";
  /** The balancer in force. */
  readonly policy: string;
  /** Whether too few endpoints are ready and traffic is spread over all of them. */
  readonly panic: boolean;
  /** The configuration in force. */
  readonly config: ConfigSnapshot;
  /** How the registry is doing for this service. */
  readonly registry: RegistrySnapshot;
  /** The circuit breaker's state, or null without one. */
  readonly breaker: "closed" | "open" | "half-open" | null;
  /** The retry budget's window now. */
  readonly budget: BudgetSnapshot;
  /** Open connections to its endpoints. */
  readonly openConnections: number;
  /** Mirrored copies in flight to it. */
  readonly mirrorsInFlight: number;
  /** Its endpoints, ready or not. */
  readonly endpoints: readonly EndpointSnapshot[];
}

/** The retry budget part of a {@link ServiceSnapshot}: its sliding window as it stands. */
export interface BudgetSnapshot {
  /** The window's length, in ms. */
  readonly windowMs: number;
  /** Calls to the service in the window. */
  readonly requests: number;
  /** Retries and hedges sent in the window. */
  readonly retries: number;
  /** The retries the window allows: the budget's ratio of the calls, plus its floor. */
  readonly allowed: number;
}

/** The configuration part of a {@link ServiceSnapshot}. */
export interface ConfigSnapshot {
  /** Configurations accepted for the service so far; 0 while the defaults apply. */
  readonly version: number;
  /** `registry` once the registry sent one that validated, else `defaults` (the mesh's options). */
  readonly source: "registry" | "defaults";
  /** How long ago the config in force was accepted, in ms; null for the defaults. */
  readonly ageMs: number | null;
  /** The parts of it that are set: `loadBalancer`, `router`, `splitter`, `resolver`, `defaults`. */
  readonly parts: readonly string[];
}

/** The registry part of a {@link ServiceSnapshot}. */
export interface RegistrySnapshot {
  /** How long ago the registry's last good answer came, in ms; null before the first. */
  readonly lastUpdateAgeMs: number | null;
  /** Whether its last message was a failure (the last good state is serving). */
  readonly failing: boolean;
  /** How long the registry has been failing (since its first error after its last good answer), in ms; 0 while it answers. */
  readonly stalenessMs: number;
  /** The last failure's message while failing, else null. */
  readonly lastError: string | null;
}

/** One endpoint in a {@link ServiceSnapshot}. */
export interface EndpointSnapshot {
  /** Endpoint id. */
  readonly id: string;
  /** Address. */
  readonly address: string;
  /** Port. */
  readonly port: number;
  /** Registry health. */
  readonly health: "passing" | "warning" | "critical";
  /** The weight the balancer uses now (slow start included); 0 when not in rotation. */
  readonly weight: number;
  /** Whether the balancer picks from it now (ready and not ejected, or everything in panic). */
  readonly inRotation: boolean;
  /** Whether outlier detection has it out now. */
  readonly ejected: boolean;
  /** How much longer it stays out, in ms; null when not ejected. */
  readonly ejectedForMs: number | null;
  /** How often it has been ejected. */
  readonly ejections: number;
  /** Requests in flight to it. */
  readonly pending: number;
  /** The balancer's round-trip estimate, in ms; null before any sample. */
  readonly rttMs: number | null;
  /** Attempts sent to it that have ended (a response, or a failure before one), since it was first picked: their rate is its request rate. */
  readonly attempts: number;
  /** Of those, the attempts that failed: before any response (refused, reset, timed out), or with a 5xx. */
  readonly failures: number;
  /** Open connections to it. */
  readonly connections: number;
  /** Its zone, or null. */
  readonly zone: string | null;
  /** Whether it serves mTLS (Consul `Connect.Native`); null when the registry does not say. */
  readonly tls: boolean | null;
}
