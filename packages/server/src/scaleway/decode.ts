import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { invalid } from "../domain/errors.ts";

/**
 * Reading a Scaleway REST request: its JSON body and its query string, each
 * field checked for its wire type here, and named (snake_case, as the client
 * sent it) when it is wrong. Only the wire is checked here: every rule of
 * Coffer's (lengths, names, paths, payload types, bounds) is the domain's,
 * the same for every transport. Unknown fields are refused rather than
 * ignored: a misspelt `protected` silently dropped would leave a secret
 * unprotected.
 */

/** A JSON object's fields, read once each; what is left unread is unknown. */
export class BodyFields {
  private readonly unread: Set<string>;

  constructor(
    private readonly fields: Record<string, unknown>,
    /** The dotted path of this object in the body, for nested objects ("ephemeral_policy."). */
    private readonly at = "",
  ) {
    this.unread = new Set(Object.keys(fields));
  }

  /** A body as a JSON object; an empty body is `{}` (the action endpoints send one). */
  static parse(text: string): BodyFields {
    if (text.trim() === "") return new BodyFields({});
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw invalid("body", `must be a JSON object (${(e as Error).message})`);
    }
    if (!isObject(value)) throw invalid("body", "must be a JSON object");
    return new BodyFields(value);
  }

  /** A field's value; null is absent, as the Scaleway clients send it. */
  private take(name: string): unknown {
    this.unread.delete(name);
    const value = this.fields[name];
    return value === null ? undefined : value;
  }

  string(name: string): string | undefined {
    const v = this.take(name);
    if (v !== undefined && typeof v !== "string") throw this.wrong(name, "a string");
    return v;
  }

  boolean(name: string): boolean | undefined {
    const v = this.take(name);
    if (v !== undefined && typeof v !== "boolean") throw this.wrong(name, "a boolean");
    return v;
  }

  /** An unsigned 32-bit integer (a JSON number). */
  uint32(name: string): number | undefined {
    const v = this.take(name);
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
      throw this.wrong(name, "a whole number from 0 to 4294967295");
    }
    return v;
  }

  strings(name: string): string[] | undefined {
    const v = this.take(name);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
      throw this.wrong(name, "an array of strings");
    }
    return v as string[];
  }

  object(name: string): BodyFields | undefined {
    const v = this.take(name);
    if (v === undefined) return undefined;
    if (!isObject(v)) throw this.wrong(name, "a JSON object");
    return new BodyFields(v, `${this.at}${name}.`);
  }

  /** A protobuf-JSON duration: `"1800s"`, `"1800.000000000s"`, `"1.5s"`. */
  duration(name: string): Duration | undefined {
    const v = this.string(name);
    return v === undefined ? undefined : parseDuration(v, this.field(name));
  }

  /** An RFC 3339 time: `"2026-07-03T15:27:54.805853Z"`. */
  timestamp(name: string): Timestamp | undefined {
    const v = this.string(name);
    return v === undefined ? undefined : parseTimestamp(v, this.field(name));
  }

  /** Standard base64 (with padding), as Scaleway's clients encode bytes. */
  base64(name: string): Uint8Array | undefined {
    const v = this.string(name);
    return v === undefined ? undefined : parseBase64(v, this.field(name));
  }

  /** Refuses the first field no reader took. Call once every field was read. */
  done(): void {
    const [unknown] = this.unread;
    if (unknown !== undefined) {
      throw invalid(this.field(unknown), "is not a field of this request");
    }
  }

  private field(name: string): string {
    return `${this.at}${name}`;
  }

  private wrong(name: string, kind: string) {
    return invalid(this.field(name), `must be ${kind}`);
  }
}

/** A query string's parameters, read once each; arrays are repeated keys (`tags=a&tags=b`). */
export class QueryFields {
  private readonly unread: Set<string>;

  constructor(private readonly params: URLSearchParams) {
    this.unread = new Set(params.keys());
  }

  private one(name: string): string | undefined {
    this.unread.delete(name);
    const all = this.params.getAll(name);
    if (all.length > 1) throw invalid(name, "must be given once");
    return all[0];
  }

  string(name: string): string | undefined {
    return this.one(name);
  }

  all(name: string): string[] {
    this.unread.delete(name);
    return this.params.getAll(name);
  }

  boolean(name: string): boolean | undefined {
    const v = this.one(name);
    if (v === undefined) return undefined;
    if (v !== "true" && v !== "false") throw invalid(name, "must be a boolean: true or false");
    return v === "true";
  }

  uint32(name: string): number | undefined {
    const v = this.one(name);
    if (v === undefined) return undefined;
    if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffff_ffff) {
      throw invalid(name, "must be a whole number from 0 to 4294967295");
    }
    return Number(v);
  }

  done(): void {
    const [unknown] = this.unread;
    if (unknown !== undefined) throw invalid(unknown, "is not a parameter of this request");
  }
}

const DURATION = /^(\d{1,12})(?:\.(\d{1,9}))?s$/;

export function parseDuration(text: string, field: string): Duration {
  const m = DURATION.exec(text);
  if (m === null) {
    throw invalid(field, `must be a duration in seconds such as "1800s" (got ${quoted(text)})`);
  }
  const nanos = Number((m[2] ?? "").padEnd(9, "0"));
  return { seconds: BigInt(m[1] ?? "0"), nanos } as Duration;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 time, to the nanosecond: Scaleway writes microseconds, which a
 * `Date` would cut to milliseconds. A day or an hour out of range (February
 * 30th, 24:00) is refused, not rolled over as `Date` would.
 */
export function parseTimestamp(text: string, field: string): Timestamp {
  const m = RFC3339.exec(text);
  const [year, month, day, hour, minute, second] = (m?.slice(1, 7) ?? []).map(Number);
  const utc = Date.UTC(year ?? 0, (month ?? 0) - 1, day ?? 0, hour ?? 0, minute ?? 0, second ?? 0);
  const back = new Date(utc);
  const offsetHours = Number(m?.[9] ?? 0);
  const offsetMinutes = Number(m?.[10] ?? 0);
  if (
    m === null ||
    back.getUTCFullYear() !== year ||
    back.getUTCMonth() !== (month ?? 0) - 1 ||
    back.getUTCDate() !== day ||
    back.getUTCHours() !== hour ||
    back.getUTCMinutes() !== minute ||
    back.getUTCSeconds() !== second ||
    offsetHours > 23 ||
    offsetMinutes > 59
  ) {
    throw invalid(
      field,
      `must be an RFC 3339 time such as "2026-07-03T15:27:54Z" (got ${quoted(text)})`,
    );
  }
  const offset = (m[8] === "-" ? -1 : 1) * (offsetHours * 3600 + offsetMinutes * 60);
  return {
    seconds: BigInt(utc / 1000 - offset),
    nanos: Number((m[7] ?? "").padEnd(9, "0")),
  } as Timestamp;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function parseBase64(text: string, field: string): Uint8Array {
  if (!BASE64.test(text)) {
    throw invalid(field, "must be standard base64 (A-Z, a-z, 0-9, + and /, padded with =)");
  }
  return new Uint8Array(Buffer.from(text, "base64"));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A value in a message, cut short: a refused field's value may be long, never a payload. */
function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}
