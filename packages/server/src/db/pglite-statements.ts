import type { PGlite } from "@electric-sql/pglite";
import { fillPlaceholders, type Logger, type Query } from "drizzle-orm";

type BackendMessage = Awaited<ReturnType<PGlite["execProtocolStream"]>>[number];

/**
 * Named prepared statements on the embedded database, as postgres-js keeps
 * them per connection on Postgres. PGlite's `query` sends every statement
 * unnamed (Parse, Describe, Bind, Describe, Execute, Sync, one call into the
 * WebAssembly each), so Postgres parses and plans it on every call: about
 * 6 ms for the access statements, whose work is well under a millisecond.
 * Here a statement is parsed once per database, and each call is one Bind,
 * Execute and Sync in one call. PGlite's own locks, parsers, serializers,
 * notifications and file sync are used as its `query` uses them; rows come
 * back as drizzle's raw `execute` gives them (date and time types as text).
 */

/**
 * A statement prepared by name (prepareStatement, db/raw-sql.ts): `execute`
 * answers as drizzle's prepared query does (rows on postgres-js, PGlite's
 * Results here), which `rowsOf` reads.
 */
export interface NamedStatement {
  execute(values: Record<string, unknown>): Promise<unknown>;
}

interface Described {
  paramTypes: number[];
  /** The RowDescription message, put before each call's rows (Execute sends none). */
  rowDescription: BackendMessage;
  /** PGlite's module (loaded with the database: a server on Postgres never loads it). */
  pglite: typeof import("@electric-sql/pglite");
}

/**
 * Date and time types (timestamp, timestamptz, interval, date) stay text,
 * as drizzle's PGlite session asks for raw SQL.
 */
const RAW_PARSERS = Object.fromEntries([1114, 1184, 1186, 1082].map((t) => [t, (v: string) => v]));

/** The statements parsed on each database, by name (a name is parsed once per database). */
const described = new WeakMap<
  PGlite,
  Map<string, { text: string; described: Promise<Described> }>
>();

export function pgliteStatement(
  client: PGlite,
  query: Query,
  name: string,
  /** drizzle's query logger, told of each call as drizzle's session tells it. */
  logger: Logger,
): NamedStatement {
  const describeOnce = () => {
    let known = described.get(client);
    if (known === undefined) {
      known = new Map();
      described.set(client, known);
    }
    const found = known.get(name);
    if (found !== undefined) {
      if (found.text !== query.sql)
        throw new Error(`statement ${name} is prepared with other text`);
      return found.described;
    }
    const entry = { text: query.sql, described: describe(client, query, name) };
    known.set(name, entry);
    // A failed Parse (the schema not migrated yet, say) is tried again by the next call.
    entry.described.catch(() => known.delete(name));
    return entry.described;
  };
  return {
    async execute(values) {
      const d = await describeOnce();
      const s = d.pglite.protocol.serialize;
      const params = fillPlaceholders(query.params, values);
      logger.logQuery(query.sql, params);
      const text = params.map((v, i) => {
        if (v === null || v === undefined) return null;
        const serializer = client.serializers[d.paramTypes[i] ?? 0];
        return serializer ? serializer(v) : String(v);
      });
      const messages = await exclusive(client, async () => {
        const answer = await client.execProtocolStream(
          Buffer.concat([s.bind({ statement: name, values: text }), s.execute({}), s.sync()]),
          { syncToFs: false },
        );
        await client.syncToFs();
        return answer;
      });
      const [result] = d.pglite.parse.parseResults(
        [d.rowDescription, ...messages],
        client.parsers,
        { parsers: RAW_PARSERS },
      );
      return result;
    },
  };
}

/** Parses the statement under its name, and learns its parameter types and row shape. */
async function describe(client: PGlite, query: Query, name: string): Promise<Described> {
  const pglite = await import("@electric-sql/pglite");
  const s = pglite.protocol.serialize;
  const messages = await exclusive(client, () =>
    client.execProtocolStream(
      Buffer.concat([
        s.parse({ name, text: query.sql, types: [] }),
        s.describe({ type: "S", name }),
        s.sync(),
      ]),
      { syncToFs: false },
    ),
  );
  const params = messages.find((m) => m.name === "parameterDescription");
  const rowDescription = messages.find((m) => m.name === "rowDescription");
  if (params === undefined || rowDescription === undefined) {
    throw new Error(`statement ${name}: PGlite did not describe its parameters and rows`);
  }
  return {
    paramTypes: (params as unknown as { dataTypeIDs: number[] }).dataTypeIDs,
    rowDescription,
    pglite,
  };
}

/**
 * As PGlite's `query` runs: after any transaction in progress (whose
 * statements hold the query lock only between them), then alone.
 */
function exclusive<T>(client: PGlite, fn: () => Promise<T>): Promise<T> {
  return client._runExclusiveTransaction(() => client._runExclusiveQuery(fn));
}

/** bytea arrives as `\x` and hex: decoded natively, where PGlite's parser decodes pair by pair. */
export function byteaFromHex(text: string): Uint8Array {
  const b = Buffer.from(text.slice(2), "hex");
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
