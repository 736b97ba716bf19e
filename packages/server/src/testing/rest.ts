import { asc } from "drizzle-orm";
import { secrets, secretVersions } from "../db/schema.ts";
import type { DomainDeps } from "../domain/context.ts";

/**
 * Raw HTTP to the Scaleway-compatible REST API of a server on a port, as
 * curl or any HTTP client would send it, without the Scaleway SDK: the
 * contract tests check the wire itself (status, headers, every byte of the
 * body), which an SDK would smooth over.
 */

export const REST_PREFIX = "/secret-manager/v1beta1/regions";

export interface RestAnswer {
  status: number;
  headers: Headers;
  /** The body as sent. */
  text: string;
  /** The body parsed, when it is JSON; undefined otherwise. */
  // biome-ignore lint/suspicious/noExplicitAny: a test reads any field of the JSON it got.
  json: any;
}

export interface RestCall {
  /** A JSON value (sent with `JSON.stringify`), or a string sent as it is. */
  body?: unknown;
  /** Query parameters; an array is sent as repeated keys (`tags=a&tags=b`). */
  query?: Record<string, string | readonly string[]>;
  /** Extra headers; the default token header is left out when `token` is null. */
  headers?: Record<string, string>;
  /** Overrides the client's token for this call; null sends none. */
  token?: string | null;
  /** Overrides the client's region. */
  region?: string;
}

export type Rest = (method: string, path: string, call?: RestCall) => Promise<RestAnswer>;

/**
 * A REST caller of the server on `port`, sending `token` as `X-Auth-Token`
 * (Scaleway's header) unless told otherwise. `path` is relative to the
 * region's prefix (`/secrets/…`).
 */
export function restClient(port: number, token: string | undefined, region = "local"): Rest {
  return async (method, path, call = {}) => {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {})) {
      for (const one of typeof v === "string" ? [v] : v) search.append(k, one);
    }
    const query = search.size === 0 ? "" : `?${search}`;
    const url = `http://127.0.0.1:${port}${REST_PREFIX}/${call.region ?? region}${path}${query}`;
    const sent = call.token === null ? undefined : (call.token ?? token);
    const headers: Record<string, string> = {
      ...(sent !== undefined && { "x-auth-token": sent }),
      ...(call.body !== undefined && { "content-type": "application/json; charset=utf-8" }),
      ...call.headers,
    };
    const body =
      call.body === undefined
        ? undefined
        : typeof call.body === "string"
          ? call.body
          : JSON.stringify(call.body);
    const res = await fetch(url, {
      method,
      headers,
      ...(body !== undefined && { body }),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

/**
 * Every secret and version row of the home database, in a stable order, as
 * text: two snapshots that are equal mean that nothing was created, changed
 * or deleted in between.
 */
export async function rowsOf(domain: DomainDeps): Promise<string> {
  const db = domain.regions.resolve("").db;
  const all = {
    secrets: await db.select().from(secrets).orderBy(asc(secrets.id)),
    versions: await db
      .select()
      .from(secretVersions)
      .orderBy(asc(secretVersions.secretId), asc(secretVersions.revision)),
  };
  return JSON.stringify(all, (_k, v) =>
    v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v,
  );
}
