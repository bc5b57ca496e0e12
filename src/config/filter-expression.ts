import { MeshError } from "../core/errors.ts";
import { compileRe2, type Re2Pattern } from "./re2-pattern.ts";

/** A compiled Consul filter expression: true when the value matches. */
export type FilterPredicate = (value: unknown) => boolean;

type Token = { readonly kind: "word" | "string" | "punct"; readonly text: string; readonly at: number };

const PUNCT = ["==", "!=", "(", ")"];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] ?? "";
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "`") {
      const end = source.indexOf(c, i + 1);
      if (end < 0) throw syntax(source, i, "unterminated string");
      const raw = source.slice(i + 1, end);
      tokens.push({ kind: "string", text: c === '"' ? raw.replace(/\\(.)/g, "$1") : raw, at: i });
      i = end + 1;
    } else {
      const punct = PUNCT.find((p) => source.startsWith(p, i));
      if (punct !== undefined) {
        tokens.push({ kind: "punct", text: punct, at: i });
        i += punct.length;
      } else {
        const m = /^[^\s()"`=!]+/.exec(source.slice(i));
        if (m === null) throw syntax(source, i, `unexpected ${JSON.stringify(c)}`);
        tokens.push({ kind: "word", text: m[0], at: i });
        i += m[0].length;
      }
    }
  }
  return tokens;
}

function syntax(source: string, at: number, problem: string): MeshError {
  return new MeshError("ERR_INVALID_CONFIG", `Invalid filter expression ${JSON.stringify(source)} at ${at}: ${problem}`, {
    details: { field: "filter", expression: source },
  });
}

/** Reads a dotted selector (`Service.Meta.version`) from a value; missing parts give undefined. */
function select(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function contains(container: unknown, item: string): boolean {
  if (Array.isArray(container)) return container.some((v) => String(v) === item);
  if (typeof container === "string") return container.includes(item);
  if (container !== null && typeof container === "object") return Object.hasOwn(container, item);
  return false;
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value) || typeof value === "string") return value.length === 0;
  if (typeof value === "object") return Object.keys(value).length === 0;
  return false;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : undefined;
}

/**
 * Compiles a Consul filter expression (the `bexpr` language of `?filter` and of service-resolver
 * subsets) into a predicate, once. Supported: `==`, `!=`, `in`, `not in`, `contains`, `not contains`,
 * `matches`, `not matches`, `is empty`, `is not empty`, `and`, `or`, `not`, parentheses; values quoted
 * with `"…"` or `` `…` ``, or bare words.
 *
 * @param source - the expression, such as `Service.Meta.version == "v1" and "canary" in Service.Tags`
 * @throws MeshError `ERR_INVALID_CONFIG` with the position of the fault
 */
export function compileFilter(source: string): FilterPredicate {
  const tokens = tokenize(source);
  let pos = 0;
  const peek = (offset = 0): Token | undefined => tokens[pos + offset];
  const isWord = (t: Token | undefined, word: string): boolean => t !== undefined && t.kind === "word" && t.text.toLowerCase() === word;
  const fail = (problem: string): MeshError => syntax(source, peek()?.at ?? source.length, problem);
  const take = (): Token => {
    const t = tokens[pos++];
    if (t === undefined) throw fail("unexpected end of expression");
    return t;
  };
  const selector = (): string[] => {
    const t = take();
    if (t.kind !== "word") throw syntax(source, t.at, `expected a selector such as Service.Tags, got ${JSON.stringify(t.text)}`);
    return t.text.split(".");
  };
  const literal = (): string => {
    const t = take();
    if (t.kind === "punct") throw syntax(source, t.at, `expected a value, got ${JSON.stringify(t.text)}`);
    return t.text;
  };

  const primary = (): FilterPredicate => {
    const t = peek();
    if (t?.kind === "punct" && t.text === "(") {
      pos++;
      const inner = or();
      const close = take();
      if (close.text !== ")") throw syntax(source, close.at, "expected ')'");
      return inner;
    }
    // value [not] in selector
    if (isWord(peek(1), "in") || (isWord(peek(1), "not") && isWord(peek(2), "in"))) {
      const value = literal();
      const negate = isWord(peek(), "not");
      pos += negate ? 2 : 1;
      const path = selector();
      return negate ? (v) => !contains(select(v, path), value) : (v) => contains(select(v, path), value);
    }
    const path = selector();
    const op = take();
    if (op.kind === "punct" && (op.text === "==" || op.text === "!=")) {
      const value = literal();
      const equal = (v: unknown): boolean => text(select(v, path)) === value;
      return op.text === "==" ? equal : (v) => !equal(v);
    }
    const word = op.text.toLowerCase();
    const negate = word === "not";
    const verb = negate ? take().text.toLowerCase() : word;
    if (verb === "is") {
      const not = isWord(peek(), "not");
      if (not) pos++;
      if (!isWord(take(), "empty")) throw fail("expected 'is empty' or 'is not empty'");
      return not ? (v) => !isEmpty(select(v, path)) : (v) => isEmpty(select(v, path));
    }
    if (verb === "contains") {
      const value = literal();
      return negate ? (v) => !contains(select(v, path), value) : (v) => contains(select(v, path), value);
    }
    if (verb === "matches") {
      const pattern = literal();
      // RE2, as go-bexpr's `matches` (Go's regexp.MatchString): some part of the value matches.
      let re: Re2Pattern;
      try {
        re = compileRe2(pattern, "filter", { search: true });
      } catch (err) {
        throw syntax(source, op.at, `invalid regular expression ${JSON.stringify(pattern)}: ${err instanceof MeshError ? String(err.details.reason) : "rejected"}`);
      }
      const test = (v: unknown): boolean => {
        const s = text(select(v, path));
        return s !== undefined && re.test(s);
      };
      return negate ? (v) => !test(v) : test;
    }
    throw syntax(source, op.at, `unknown operator ${JSON.stringify(op.text)}`);
  };
  const not = (): FilterPredicate => {
    if (isWord(peek(), "not") && !isWord(peek(1), "in")) {
      pos++;
      const inner = not();
      return (v) => !inner(v);
    }
    return primary();
  };
  const and = (): FilterPredicate => {
    let left = not();
    while (isWord(peek(), "and")) {
      pos++;
      const l = left;
      const r = not();
      left = (v) => l(v) && r(v);
    }
    return left;
  };
  const or = (): FilterPredicate => {
    let left = and();
    while (isWord(peek(), "or")) {
      pos++;
      const l = left;
      const r = and();
      left = (v) => l(v) || r(v);
    }
    return left;
  };

  if (tokens.length === 0) throw fail("empty expression");
  const predicate = or();
  if (pos < tokens.length) throw fail(`unexpected ${JSON.stringify(peek()?.text)}`);
  return predicate;
}
