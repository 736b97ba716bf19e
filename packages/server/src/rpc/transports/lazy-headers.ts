import type http from "node:http";
import type * as grpc from "@grpc/grpc-js";

/**
 * A request's headers as the `Headers` that connect's handlers and the
 * shared chain read, over what the transport already parsed. A call reads
 * a few headers by name and nothing else, so `get` answers from the
 * transport's own headers, and the `Headers` itself is filled only when
 * anything else is asked of it: copying every request header into a
 * `Headers` (whose `append` validates and normalizes each one) on every call
 * cost more than the reads (bench/RESULTS.md, access readings of 2026-12-06,
 * seventh session, for gRPC, and of 2026-12-07, fifteenth session, for
 * Connect). Either way a caller sees what an eagerly filled `Headers` shows:
 * the same names, values and errors.
 */
abstract class LazyHeaders<Source> extends Headers {
  #source: Source | undefined;

  constructor(source: Source) {
    super();
    this.#source = source;
  }

  /** The values of `name` (a valid header name, in any case) as `Headers.get` joins them; null when absent. */
  protected abstract lookup(source: Source, name: string): string | null;
  /** Every header of `source`, in order, as eager `append` calls would add them. */
  protected abstract each(source: Source, append: (name: string, value: string) => void): void;

  override get(name: string): string | null {
    const source = this.#source;
    // An invalid name: Headers' own error.
    if (source === undefined || !HEADER_NAME.test(name)) {
      this.#fill();
      return super.get(name);
    }
    return this.lookup(source, name);
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
    const source = this.#source;
    if (source === undefined) return;
    this.#source = undefined;
    this.each(source, (name, value) => super.append(name, value));
  }
}

/**
 * A gRPC call's request metadata (grpc-js.ts). A binary value reads as its
 * base64, as connect-node sees it on the wire.
 */
export class MetadataHeaders extends LazyHeaders<grpc.Metadata> {
  protected lookup(metadata: grpc.Metadata, name: string): string | null {
    return joined(metadata.get(name), metadataValue);
  }
  protected each(metadata: grpc.Metadata, append: (name: string, value: string) => void): void {
    for (const [key, values] of Object.entries(metadata.toJSON())) {
      for (const value of values) append(key, metadataValue(value));
    }
  }
}

/**
 * A node HTTP request's headers (connect-adapter.ts), without HTTP/2's
 * pseudo-headers, as connect-node copies them.
 */
export class NodeHeaders extends LazyHeaders<http.IncomingHttpHeaders> {
  protected lookup(headers: http.IncomingHttpHeaders, name: string): string | null {
    // Node's names are lower case; a pseudo-header's is not a valid name.
    const value = headers[name.toLowerCase()];
    if (value === undefined) return null;
    return typeof value === "string" ? trimmed(value) : joined(value, trimmed);
  }
  protected each(
    headers: http.IncomingHttpHeaders,
    append: (name: string, value: string) => void,
  ): void {
    for (const [key, value] of Object.entries(headers)) {
      if (key.startsWith(":") || value === undefined) continue;
      if (typeof value === "string") append(key, value);
      else for (const v of value) append(key, v);
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

/** `values` as Headers.get gives several values of one name: each as Headers holds it, joined by ", "; null for none. */
function joined<T>(values: readonly T[], text: (value: T) => string): string | null {
  if (values.length === 0) return null;
  let all = text(values[0] as T);
  for (let i = 1; i < values.length; i++) all += `, ${text(values[i] as T)}`;
  return all;
}

/** A metadata value as Headers holds it: text trimmed of HTTP whitespace, bytes as base64. */
function metadataValue(value: grpc.MetadataValue): string {
  return typeof value === "string" ? trimmed(value) : value.toString("base64");
}

/** Text as Headers holds it: without HTTP whitespace at either end. */
function trimmed(value: string): string {
  return value.replace(EDGE_WHITESPACE, "");
}
