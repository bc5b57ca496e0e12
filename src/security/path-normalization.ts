/**
 * What `mesh.inbound()` does with a request path that is not in normal form: `normalize` (authorize the
 * normal form and hand it to the app in `req.url`) or `reject` (answer 400).
 */
export type PathNormalization = "normalize" | "reject";

/**
 * What `mesh.inbound()` does with `%2F` and `%5C` (escaped `/` and `\`) in a path, Envoy's
 * `path_with_escaped_slashes_action`: `keep` them as they are (upper-cased), `reject` the request (400), or
 * `decode` them to `/` (the slash then separates segments, for authorization and for the app).
 */
export type EscapedSlashes = "keep" | "reject" | "decode";

/** A request target in normal form, or why it was refused. @internal */
export type NormalizedTarget =
  | {
      readonly ok: true;
      /** The normalized path. */
      readonly path: string;
      /** The query with its `?`, exactly as received, or "". */
      readonly query: string;
      /** Whether the path differs from the one received. */
      readonly changed: boolean;
    }
  | {
      readonly ok: false;
      /** Why, for the mesh's events (never sent to the caller). */
      readonly reason: string;
    };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * Normalizes an origin-form request target (`/path?query`) the way Envoy does with `normalize_path` and
 * `merge_slashes`, so that what is authorized is what the app routes on:
 *
 * 1. a fragment (`#`), an absolute-form (`http://host/...`) or any other target that does not start with
 *    `/` is refused;
 * 2. `\` becomes `/` (as WHATWG URL parsers in apps read it);
 * 3. percent-encoded unreserved characters (`ALPHA DIGIT - . _ ~`) are decoded, other percent-encodings
 *    upper-cased, and a `%` not followed by two hex digits refused;
 * 4. `%2F` and `%5C` are kept, refused or decoded as `escapedSlashes` says;
 * 5. a dot segment carrying `;` parameters (`..;x`, `.;`), or a segment that would turn into one when
 *    `%2F`, `%5C` or `%3B` are decoded (`..%2Fadmin`), is refused: servers disagree on what it means;
 * 6. dot segments are removed (RFC 3986 section 5.2.4) and runs of `/` merged into one.
 *
 * The query is kept exactly as received.
 *
 * @param target - the request target (node's `req.url`)
 * @param escapedSlashes - the policy for `%2F` and `%5C`
 * @internal
 */
export function normalizeTarget(target: string, escapedSlashes: EscapedSlashes): NormalizedTarget {
  if (target.includes("#")) return { ok: false, reason: "the request target carries a fragment (#)" };
  if (!target.startsWith("/")) {
    const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:/.test(target);
    return { ok: false, reason: absolute ? "the request target is in absolute form (scheme://host/...)" : "the request target does not start with /" };
  }
  const q = target.indexOf("?");
  const raw = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q);
  // Most paths have nothing to normalize: no dot, escape, backslash or doubled slash.
  if (!/[.%\\]|\/\//.test(raw)) return { ok: true, path: raw, query, changed: false };
  const escapes = canonicalEscapes(raw.replaceAll("\\", "/"), escapedSlashes);
  if (typeof escapes !== "string") return { ok: false, reason: escapes.reason };
  let dots = false;
  for (const segment of escapes.split("/")) {
    if (segment === "." || segment === "..") dots = true;
    const problem = segmentProblem(segment);
    if (problem !== undefined) return { ok: false, reason: problem };
  }
  const undotted = dots ? removeDotSegments(escapes) : escapes;
  const path = undotted.includes("//") ? undotted.replace(/\/{2,}/g, "/") : undotted;
  return { ok: true, path, query, changed: path !== raw };
}

/** Decodes unreserved escapes, upper-cases the others and applies the escaped-slash policy. */
function canonicalEscapes(path: string, escapedSlashes: EscapedSlashes): string | { readonly reason: string } {
  if (!path.includes("%")) return path;
  let out = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i] as string;
    if (c !== "%") {
      out += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return { reason: "the path has a % that is not followed by two hex digits" };
    i += 2;
    const decoded = String.fromCharCode(Number.parseInt(hex, 16));
    const upper = `%${hex.toUpperCase()}`;
    if (UNRESERVED.test(decoded)) out += decoded;
    else if (upper === "%2F" || upper === "%5C") {
      if (escapedSlashes === "reject") return { reason: `the path has an escaped slash (${upper}), refused by escapedSlashes: "reject"` };
      out += escapedSlashes === "decode" ? "/" : upper;
    } else out += upper;
  }
  return out;
}

/** Why a segment (escapes already canonical) is refused, or undefined: a dot segment in disguise. */
function segmentProblem(segment: string): string | undefined {
  if (segment === "." || segment === ".." || !segment.includes(".")) return undefined;
  // A dot segment starts the segment or follows an escaped slash.
  if (!segment.startsWith(".") && !segment.includes("%2F") && !segment.includes("%5C")) return undefined;
  const decoded = segment.replaceAll("%2F", "/").replaceAll("%5C", "/").replaceAll("%3B", ";");
  for (const piece of decoded.split("/")) {
    const name = piece.split(";", 1)[0];
    if (name === "." || name === "..") {
      return piece.includes(";") ? "the path has a dot segment carrying ;parameters (such as /..;/)" : "the path has a dot segment hidden by an escaped slash (such as ..%2F)";
    }
  }
  return undefined;
}

/**
 * RFC 3986 section 5.2.4, "Remove Dot Segments", as the RFC writes it: the input buffer is consumed from
 * the left, `.` and `..` segments are dropped, and each `..` takes away the segment before it.
 *
 * @param input - a path
 * @returns the path without dot segments
 * @internal
 */
export function removeDotSegments(input: string): string {
  // An index into the input stands for the RFC's input buffer: each step consumes from it.
  let i = 0;
  const n = input.length;
  const output: string[] = [];
  const at = (prefix: string): boolean => input.startsWith(prefix, i);
  const isRest = (rest: string): boolean => n - i === rest.length && at(rest);
  while (i < n) {
    if (at("../")) i += 3; // A
    else if (at("./")) i += 2; // A
    else if (at("/./")) i += 2; // B
    else if (isRest("/.")) {
      output.push("/"); // B: "/." becomes "/", which E then moves to the output
      i = n;
    }
    else if (at("/../")) {
      i += 3; // C
      output.pop();
    } else if (isRest("/..")) {
      output.pop(); // C: "/.." becomes "/", which E then moves to the output
      output.push("/");
      i = n;
    } else if (isRest(".") || isRest("..")) i = n; // D
    else {
      const next = input.indexOf("/", i + 1); // E: a segment with its leading "/", if any
      const end = next < 0 ? n : next;
      output.push(input.slice(i, end));
      i = end;
    }
  }
  return output.join("");
}
