/**
 * The Fetch standard's `Headers` (https://fetch.spec.whatwg.org/#headers-class),
 * for programs bundled into one file for Node (the agent's
 * dist/coffer-agent.mjs, the CLI's dist/coffer.mjs), installed by their
 * entry before anything else runs. Node's own `Headers`
 * global is undici's: the first touch loads undici and compiles its llhttp
 * WebAssembly, several megabytes of memory and tens of milliseconds of a
 * program's start, for a client (connect-node) that only uses `Headers` as
 * a case-insensitive multimap over node:http2. This class behaves as the
 * real one does for everything a header list does (node-headers.test.ts checks
 * it against Node's): names are validated tokens compared without case,
 * values are trimmed and validated, `append` joins values with ", ", `get`
 * answers null for a missing name, iteration is sorted by lower-case name
 * with `set-cookie` values kept apart, and the constructor takes a Headers,
 * a list of pairs or a record. Request and response guards (forbidden
 * names) do not apply: they belong to Request and Response, which
 * connect-node never builds. Exported as `@coffer/client/node-headers`.
 */

/** A header name: an HTTP token (RFC 9110, 5.6.2). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Leading and trailing HTTP whitespace (tab, line feed, carriage return, space). */
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;
/** What a header value may not hold once trimmed. */
const FORBIDDEN_IN_VALUE = /[\0\n\r]/;

export type HeadersInit = Iterable<Iterable<string>> | Record<string, string>;

/** WebIDL's ByteString: a string of code units up to 0xFF. */
function byteString(value: unknown): string {
  if (typeof value === "symbol") throw new TypeError("Cannot convert a Symbol to a ByteString");
  const s = String(value);
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) {
      throw new TypeError(
        `Cannot convert argument to a ByteString because the character at index ${i} has a value of ${s.charCodeAt(i)} which is greater than 255.`,
      );
    }
  }
  return s;
}

function headerName(method: string, value: unknown): string {
  const name = byteString(value);
  if (!TOKEN.test(name))
    throw new TypeError(`Headers.${method}: "${name}" is an invalid header name.`);
  return name.toLowerCase();
}

function headerValue(method: string, value: unknown): string {
  const normalized = byteString(value).replace(EDGE_WHITESPACE, "");
  if (FORBIDDEN_IN_VALUE.test(normalized)) {
    throw new TypeError(`Headers.${method}: "${normalized}" is an invalid header value.`);
  }
  return normalized;
}

export class Headers {
  /** Lower-case name to values in the order they were appended. */
  readonly #list = new Map<string, string[]>();
  /** The sorted and combined list, until the next change. */
  #sorted: [string, string][] | undefined;

  constructor(init?: HeadersInit) {
    if (init === undefined) return;
    if (typeof init !== "object" || init === null) {
      throw new TypeError(
        "Headers constructor: Argument 1 could not be converted to one of: sequence<sequence<ByteString>>, record<ByteString, ByteString>.",
      );
    }
    if (Symbol.iterator in init) {
      for (const pair of init as Iterable<Iterable<string>>) {
        if (typeof pair !== "object" || pair === null || !(Symbol.iterator in pair)) {
          throw new TypeError("Headers constructor: a header must be a [name, value] pair.");
        }
        const items = [...pair];
        if (items.length !== 2) {
          throw new TypeError(
            `Headers constructor: expected name/value pair to be length 2, found ${items.length}.`,
          );
        }
        this.append(items[0] as string, items[1] as string);
      }
      return;
    }
    for (const key of Reflect.ownKeys(init)) {
      if (!Object.prototype.propertyIsEnumerable.call(init, key)) continue;
      this.append(byteString(key), (init as Record<string | symbol, string>)[key] as string);
    }
  }

  append(name: string, value: string): void {
    const key = headerName("append", name);
    const v = headerValue("append", value);
    const values = this.#list.get(key);
    if (values === undefined) this.#list.set(key, [v]);
    else values.push(v);
    this.#sorted = undefined;
  }

  delete(name: string): void {
    if (this.#list.delete(headerName("delete", name))) this.#sorted = undefined;
  }

  get(name: string): string | null {
    return this.#list.get(headerName("get", name))?.join(", ") ?? null;
  }

  getSetCookie(): string[] {
    return [...(this.#list.get("set-cookie") ?? [])];
  }

  has(name: string): boolean {
    return this.#list.has(headerName("has", name));
  }

  set(name: string, value: string): void {
    this.#list.set(headerName("set", name), [headerValue("set", value)]);
    this.#sorted = undefined;
  }

  forEach(
    callback: (value: string, name: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    if (typeof callback !== "function") {
      throw new TypeError("Headers.forEach: Argument 1 is not a function.");
    }
    // Index by index over the current list, as the standard iterates: a
    // callback that changes the headers sees its change.
    for (let i = 0; i < this.#pairs().length; i++) {
      const [name, value] = this.#pairs()[i] as [string, string];
      callback.call(thisArg, value, name, this);
    }
  }

  *entries(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.#pairs().length; i++) {
      const [name, value] = this.#pairs()[i] as [string, string];
      yield [name, value];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }

  /** The standard's "sort and combine": by name; values joined, but each set-cookie apart. */
  #pairs(): [string, string][] {
    if (this.#sorted !== undefined) return this.#sorted;
    const sorted: [string, string][] = [];
    for (const name of [...this.#list.keys()].sort()) {
      const values = this.#list.get(name) as string[];
      if (name === "set-cookie") for (const v of values) sorted.push([name, v]);
      else sorted.push([name, values.join(", ")]);
    }
    this.#sorted = sorted;
    return sorted;
  }
}

/**
 * Makes {@link Headers} the global `Headers`, in place of Node's lazy getter
 * that would load undici. Call it before any module uses `Headers`.
 */
export function installHeaders(): void {
  Object.defineProperty(globalThis, "Headers", {
    value: Headers,
    writable: true,
    configurable: true,
    enumerable: false,
  });
}
