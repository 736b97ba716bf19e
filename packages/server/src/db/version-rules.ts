import { type Placeholder, type SQL, sql } from "drizzle-orm";

/**
 * The rules about a version that more than one statement applies, written
 * once as SQL, most over a `secret_versions` row named by `alias` (the
 * table's own name, or the alias a statement gives it). Aliases are names
 * from our own statements, never input, and are checked to be plain
 * identifiers.
 */

function column(alias: string): (name: string) => string {
  if (!/^[a-z_][a-z0-9_]*$/.test(alias)) throw new Error(`not a plain SQL alias: ${alias}`);
  return (name) => `${alias}.${name}`;
}

/**
 * Servable: enabled, not past its expiry and never consumed: the only
 * versions whose payload may be served. Expiry is checked here, not left to
 * the sweeper, so that an expired version is never served even before the
 * sweeper applies its action; consumption too, so that a consumed
 * single-access version is never served again whatever its status or
 * properties became since.
 */
export function servableIn(alias: string): SQL {
  const c = column(alias);
  return sql.raw(
    `(${c("status")} = 'enabled' and (${c("expires_at")} is null or ${c("expires_at")} > now()) and ${c("consumed_at")} is null)`,
  );
}

/**
 * The SET list that fires a version's ephemeral action, when it expires (the
 * sweeper) or is read once (a single-access consumption): `delete` destroys
 * the payload and marks the version deleted, anything else disables it and
 * keeps the payload. Only ever applied to an enabled version (so never
 * destroyed): its `deleted_at` is null until this sets it.
 */
export function ephemeralActionSet(alias: string): SQL {
  const c = column(alias);
  const destroy = `${c("ephemeral_action")} = 'delete'`;
  const keepUnlessDestroyed = (name: string) =>
    `${name} = case when ${destroy} then null else ${c(name)} end`;
  return sql.raw(
    [
      `status = case when ${destroy} then 'deleted' else 'disabled' end`,
      `deleted_at = case when ${destroy} then now() else ${c("deleted_at")} end`,
      keepUnlessDestroyed("key_id"),
      keepUnlessDestroyed("wrapped_key"),
      keepUnlessDestroyed("ciphertext"),
    ].join(",\n    "),
  );
}

/**
 * A version's `expires_at` for a time to live from now: on the database's
 * clock, which is also the clock that decides expiry (servableIn). Null when
 * `ttlMs` is.
 */
export function expiresIn(ttlMs: number | Placeholder | SQL): SQL {
  return sql`now() + ${ttlMs}::bigint * interval '1 millisecond'`;
}
