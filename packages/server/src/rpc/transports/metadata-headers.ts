import type * as grpc from "@grpc/grpc-js";

/**
 * A gRPC call's request metadata as the `Headers` the shared chain reads
 * (grpc-js.ts). The chain reads two or three headers by name on every call
 * and nothing else, so `get` answers from the metadata, and the `Headers`
 * itself is filled only when anything else is asked of it: copying every
 * request header into a `Headers` (whose `append` validates and normalizes
 * each one) on every call cost more than the reads (bench/RESULTS.md, access
 * reading of 2026-12-06, seventh session). Either way a caller sees what an
 * eagerly filled `Headers` shows: the same names, values (a binary value as
 * its base64, as connect-node sees it on the wire) and errors.
 */
export class MetadataHeaders extends Headers {
  #metadata: grpc.Metadata | undefined;

  constructor(metadata: grpc.Metadata) {
    super();
    this.#metadata = metadata;
  }

  override get(name: string): string | null {
    const metadata = this.#metadata;
    // An invalid name: Headers' own error.
    if (metadata === undefined || !HEADER_NAME.test(name)) {
      this.#fill();
      return super.get(name);
    }
    const values = metadata.get(name);
    if (values.length === 0) return null;
    let joined = headerValue(values[0] as grpc.MetadataValue);
    for (let i = 1; i < values.length; i++) {
      joined += `, ${headerValue(values[i] as grpc.MetadataValue)}`;
    }
    return joined;
  }

  override has(name: string): boolean {
    this.#fill();
    return super.has(name);
  }
  override set(name: string, value: string): void {
    this.#fill();
    super.set(name, value);
  }
  override append(name: string, value: string): void {
    this.#fill();
    super.append(name, value);
  }
  override delete(name: string): void {
    this.#fill();
    super.delete(name);
  }
  override getSetCookie(): string[] {
    this.#fill();
    return super.getSetCookie();
  }
  override forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    this.#fill();
    super.forEach(callback, thisArg);
  }
  entries(): IterableIterator<[string, string]> {
    this.#fill();
    return (Headers.prototype as unknown as Iterating).entries.call(this);
  }
  keys(): IterableIterator<string> {
    this.#fill();
    return (Headers.prototype as unknown as Iterating).keys.call(this);
  }
  values(): IterableIterator<string> {
    this.#fill();
    return (Headers.prototype as unknown as Iterating).values.call(this);
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** Copies every request header in, once. */
  #fill(): void {
    const metadata = this.#metadata;
    if (metadata === undefined) return;
    this.#metadata = undefined;
    for (const [key, values] of Object.entries(metadata.toJSON())) {
      for (const value of values) super.append(key, headerValue(value));
    }
  }
}

/** Headers' iteration, which the type declarations in use here leave out. */
interface Iterating {
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
}

/** RFC 9110's token: what Headers accepts as a name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** HTTP whitespace at either end, which Headers strips from a value. */
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** A metadata value as Headers holds it: text trimmed of HTTP whitespace, bytes as base64. */
function headerValue(value: grpc.MetadataValue): string {
  return typeof value === "string" ? value.replace(EDGE_WHITESPACE, "") : value.toString("base64");
}
