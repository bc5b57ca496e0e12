import type { CheckRecord, CheckStatus, NodeRecord, ServiceRecord } from "./consul-state.ts";
import { parseGoDuration } from "../../config/duration.ts";

/** A registration Consul refuses: 400 (or `status`) with this message. @internal */
export class RegistrationError extends Error {
  /** The HTTP status Consul answers with. */
  readonly status: number;

  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

type Json = Record<string, unknown>;

/** Looks a key up as Consul's decoder does: any case, with or without underscores. */
function field(o: Json, name: string): unknown {
  const want = name.toLowerCase();
  for (const [key, value] of Object.entries(o)) if (key.toLowerCase().replaceAll("_", "") === want) return value;
  return undefined;
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function object(value: unknown): Json | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function stringMap(value: unknown): Record<string, string> {
  const o = object(value) ?? {};
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => typeof e[1] === "string"));
}

function decode(body: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    throw new RegistrationError(`Request decode failed: ${(err as Error).message}`);
  }
  const o = object(parsed);
  if (o === undefined) throw new RegistrationError("Request decode failed: expected a JSON object");
  return o;
}

function weights(value: unknown): { Passing: number; Warning: number } {
  const o = object(value);
  if (o === undefined) return { Passing: 1, Warning: 1 };
  const passing = field(o, "Passing");
  const warning = field(o, "Warning");
  const p = typeof passing === "number" ? passing : 0;
  const w = typeof warning === "number" ? warning : 0;
  if (p <= 0) throw new RegistrationError("Invalid Weights: Passing must be greater than 0");
  if (w < 0) throw new RegistrationError("Invalid Weights: Warning must be greater or equal than 0");
  if (p > 65535 || w > 65535) throw new RegistrationError("Invalid Weights: DNS Weight must be between 0 and 65535");
  return { Passing: p, Warning: w };
}

function meta(value: unknown): Record<string, string> {
  const m = stringMap(value);
  const keys = Object.keys(m);
  if (keys.length > 64) throw new RegistrationError("Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs");
  for (const key of keys) {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(key)) throw new RegistrationError(`Invalid Service Meta: Key contains invalid characters: ${key}`);
    if ((m[key] ?? "").length > 512) throw new RegistrationError(`Invalid Service Meta: Value is too long (limit: 512 characters): ${key}`);
  }
  return m;
}

/** A service instance from a registration body (agent: `Name`; catalog: `Service`), with Consul's defaults. */
function serviceRecord(o: Json, id: string, name: string): ServiceRecord {
  const port = field(o, "Port");
  const kind = str(field(o, "Kind"));
  const proxy = object(field(o, "Proxy"));
  const native = object(field(o, "Connect"))?.Native === true;
  return {
    ...(kind === "" ? {} : { Kind: kind }),
    ...(proxy === undefined ? {} : { Proxy: proxy }),
    ...(native ? { Connect: { Native: true } } : {}),
    ID: id,
    Service: name,
    Tags: strings(field(o, "Tags")),
    Address: str(field(o, "Address")),
    TaggedAddresses: (object(field(o, "TaggedAddresses")) ?? {}) as ServiceRecord["TaggedAddresses"],
    Meta: meta(field(o, "Meta")),
    Port: typeof port === "number" ? port : 0,
    Weights: weights(field(o, "Weights")),
    EnableTagOverride: field(o, "EnableTagOverride") === true,
    Namespace: "default",
  };
}

/** `Check` and `Checks` of a registration body, in order. */
function checkDefinitions(o: Json): Json[] {
  const single = object(field(o, "Check"));
  const many = (Array.isArray(field(o, "Checks")) ? (field(o, "Checks") as unknown[]) : []).map(object).filter((c) => c !== undefined);
  return [...(single === undefined ? [] : [single]), ...many];
}

const CHECK_TYPES = ["HTTP", "TCP", "UDP", "GRPC", "H2PING", "Args", "TTL", "AliasService", "AliasNode", "DockerContainerID", "OSService"];

/** The check `Type` Consul stores for each kind of definition. */
const TYPE_NAMES: Readonly<Record<string, string>> = {
  HTTP: "http",
  TCP: "tcp",
  UDP: "udp",
  GRPC: "grpc",
  H2PING: "h2ping",
  Args: "script",
  TTL: "ttl",
  AliasService: "alias",
  AliasNode: "alias",
  DockerContainerID: "docker",
  OSService: "os_service",
};

function status(value: unknown): CheckStatus {
  if (value === undefined || value === "") return "critical";
  if (value === "passing" || value === "warning" || value === "critical") return value;
  throw new RegistrationError("Status for checks must 'passing', 'warning', 'critical'");
}

/** A check definition's type as Consul stores it, and its TTL in ms for a TTL check, validated as Consul does. */
function checkKind(def: Json): { type: string; ttl: number | undefined } {
  const type = CHECK_TYPES.find((t) => field(def, t) !== undefined && field(def, t) !== "");
  if (type === undefined) throw new RegistrationError("Invalid check: TTL must be > 0 for TTL checks, or one of HTTP, TCP, UDP, GRPC, H2PING, Args, AliasService, AliasNode, DockerContainerID or OSService must be set");
  if (["HTTP", "TCP", "UDP", "GRPC", "H2PING"].includes(type) && parseGoDuration(str(field(def, "Interval"))) === undefined) {
    throw new RegistrationError(`Invalid check: Interval must be > 0 for ${type} checks`);
  }
  if (type !== "TTL") return { type: TYPE_NAMES[type] ?? "", ttl: undefined };
  const ttl = parseGoDuration(str(field(def, "TTL")));
  if (ttl === undefined || ttl <= 0) throw new RegistrationError("Invalid check: TTL must be > 0 for TTL checks");
  return { type: "ttl", ttl };
}

/** What `PUT /v1/agent/check/register` turns into. @internal */
export interface CheckRegistration {
  readonly check: CheckRecord;
  /** The TTL in ms, for a TTL check. */
  readonly ttl: number | undefined;
}

/**
 * Parses `PUT /v1/agent/check/register` as Consul does: `Name` required, `CheckID` (or `ID`) defaults
 * to the name, `Status` defaults to critical, a `ServiceID` must name a service of this agent.
 *
 * @param body - the request body
 * @param node - the agent's node
 * @param serviceOf - the agent's service with an ID, if any
 * @throws RegistrationError 400 with Consul's message, or 404 for an unknown `ServiceID`
 * @internal
 */
export function parseCheckRegistration(body: string, node: string, serviceOf: (id: string) => ServiceRecord | undefined): CheckRegistration {
  const def = decode(body);
  const name = str(field(def, "Name"));
  if (name === "") throw new RegistrationError("Missing check name");
  const given = field(def, "Status");
  if (given !== undefined && given !== "" && given !== "passing" && given !== "warning" && given !== "critical") throw new RegistrationError("Bad check status");
  const kind = checkKind(def);
  const serviceId = str(field(def, "ServiceID"));
  const service = serviceId === "" ? undefined : serviceOf(serviceId);
  if (serviceId !== "" && service === undefined) throw new RegistrationError(`ServiceID "${serviceId}" does not exist`, 404);
  const id = str(field(def, "CheckID")) || str(field(def, "ID")) || name;
  const check: CheckRecord = {
    Node: node,
    CheckID: id,
    Name: name,
    Status: status(given),
    Notes: str(field(def, "Notes")),
    Output: "",
    ServiceID: serviceId,
    ServiceName: service?.Service ?? "",
    ServiceTags: service?.Tags ?? [],
    Type: kind.type,
    Namespace: "default",
  };
  return { check, ttl: kind.ttl };
}

/** What an agent registration turns into. @internal */
export interface ServiceRegistration {
  readonly service: ServiceRecord;
  readonly checks: CheckRecord[];
  /** TTL checks: check ID → TTL in ms. */
  readonly ttls: Map<string, number>;
}

/**
 * Parses `PUT /v1/agent/service/register` as Consul does: PascalCase or snake_case keys, `Check` or
 * `Checks`, Consul's defaults and validation messages. @internal
 */
export function parseServiceRegistration(body: string, node: string): ServiceRegistration {
  const o = decode(body);
  const name = field(o, "Name");
  if (typeof name !== "string" || name === "") throw new RegistrationError("Missing service name");
  const id = typeof field(o, "ID") === "string" && field(o, "ID") !== "" ? (field(o, "ID") as string) : name;
  const address = typeof field(o, "Address") === "string" ? (field(o, "Address") as string) : "";
  if (address === "0.0.0.0" || address === "::" || address === "[::]") throw new RegistrationError("Invalid service address");
  const connect = object(field(o, "Connect"));
  if (connect !== undefined && field(connect, "SidecarService") !== undefined) {
    throw new RegistrationError("FakeConsul does not implement Connect.SidecarService (sidecar registration); Consul serves it. See docs/consul.md for what FakeConsul serves.", 501);
  }
  const service = serviceRecord(o, id, name);
  const definitions = checkDefinitions(o);
  const checks: CheckRecord[] = [];
  const ttls = new Map<string, number>();
  definitions.forEach((def, i) => {
    const kind = checkKind(def);
    const given = field(def, "CheckID") ?? field(def, "ID");
    const checkId = typeof given === "string" && given !== "" ? given : definitions.length === 1 ? `service:${id}` : `service:${id}:${i + 1}`;
    const checkName = field(def, "Name");
    checks.push({
      Node: node,
      CheckID: checkId,
      Name: typeof checkName === "string" && checkName !== "" ? checkName : `Service '${name}' check`,
      Status: status(field(def, "Status")),
      Notes: typeof field(def, "Notes") === "string" ? (field(def, "Notes") as string) : "",
      Output: "",
      ServiceID: id,
      ServiceName: name,
      ServiceTags: service.Tags,
      Type: kind.type,
      Namespace: "default",
    });
    if (kind.ttl !== undefined) ttls.set(checkId, kind.ttl);
  });
  return { service, checks, ttls };
}

/** What a catalog registration turns into. @internal */
export interface CatalogRegistration {
  readonly node: NodeRecord;
  readonly service: ServiceRecord | undefined;
  readonly checks: CheckRecord[];
}

/** Parses `PUT /v1/catalog/register` (node, optional service, optional checks). @internal */
export function parseCatalogRegistration(body: string, datacenter: string): CatalogRegistration {
  const o = decode(body);
  const nodeName = field(o, "Node");
  const address = field(o, "Address");
  if (typeof nodeName !== "string" || nodeName === "") throw new RegistrationError("Must provide node");
  if (typeof address !== "string" || address === "") throw new RegistrationError("Must provide address");
  const node: NodeRecord = {
    ID: typeof field(o, "ID") === "string" ? (field(o, "ID") as string) : "",
    Node: nodeName,
    Address: address,
    Datacenter: typeof field(o, "Datacenter") === "string" ? (field(o, "Datacenter") as string) : datacenter,
    TaggedAddresses: stringMap(field(o, "TaggedAddresses")),
    Meta: stringMap(field(o, "NodeMeta")),
  };
  const s = object(field(o, "Service"));
  let service: ServiceRecord | undefined;
  if (s !== undefined) {
    const name = field(s, "Service");
    if (typeof name !== "string" || name === "") throw new RegistrationError("Must provide service name");
    service = serviceRecord(s, str(field(s, "ID")) === "" ? name : str(field(s, "ID")), name);
  }
  const checks = checkDefinitions(o).map((c): CheckRecord => {
    const serviceId = typeof field(c, "ServiceID") === "string" ? (field(c, "ServiceID") as string) : "";
    return {
      Node: nodeName,
      CheckID: str(field(c, "CheckID")),
      Name: str(field(c, "Name")),
      Status: status(field(c, "Status")),
      Notes: typeof field(c, "Notes") === "string" ? (field(c, "Notes") as string) : "",
      Output: typeof field(c, "Output") === "string" ? (field(c, "Output") as string) : "",
      ServiceID: serviceId,
      ServiceName: serviceId === "" ? "" : (service?.Service ?? ""),
      ServiceTags: serviceId === "" ? [] : (service?.Tags ?? []),
      Type: "",
      Namespace: "default",
    };
  });
  return { node, service, checks };
}
