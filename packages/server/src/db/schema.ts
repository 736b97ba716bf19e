import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/** bytea as Uint8Array on both drivers (postgres-js gives Buffer, a Uint8Array). */
export const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => "bytea",
});

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * Secrets. A row scheduled for deletion keeps its place until the sweeper
 * purges it, but frees its (project, region, path, name) for a new secret:
 * the unique index only covers live rows.
 */
export const secrets = pgTable(
  "secrets",
  {
    id: uuid("id").primaryKey(),
    projectId: uuid("project_id").notNull(),
    region: text("region").notNull(),
    name: text("name").notNull(),
    path: text("path").notNull(),
    type: text("type").notNull(),
    description: text("description").notNull().default(""),
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
    protected: boolean("protected").notNull().default(false),
    /** Ephemeral policy: all three null when the secret has none. */
    ttlMs: bigint("ephemeral_ttl_ms", { mode: "number" }),
    expiresOnceAccessed: boolean("ephemeral_once"),
    ephemeralAction: text("ephemeral_action"),
    /** The highest revision ever given out: revisions are never reused. */
    lastRevision: integer("last_revision").notNull().default(0),
    /**
     * How many of its versions keep their payload (status other than
     * `deleted`): what the version quota counts, read from the locked row
     * instead of counted. Kept by triggers on secret_versions (migration
     * 0010), so no insert, status change or delete can forget it; the create
     * statement (db/versions-batch.ts) counts its own versions, in the row
     * update it makes anyway, and tells the insert trigger so (0013).
     */
    keptVersions: integer("kept_versions").notNull().default(0),
    /** Bumped by every mutation of the secret or its versions; the etag. */
    generation: bigint("generation", { mode: "number" }).notNull().default(1),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
    deletionRequestedAt: ts("deletion_requested_at"),
  },
  (t) => [
    uniqueIndex("secrets_live_name_key")
      .on(t.projectId, t.region, t.path, t.name)
      .where(sql`${t.deletionRequestedAt} is null`),
    index("secrets_project_path_idx").on(t.projectId, t.path),
    index("secrets_deletion_idx")
      .on(t.deletionRequestedAt)
      .where(sql`${t.deletionRequestedAt} is not null`),
    check("secrets_kept_versions_check", sql`${t.keptVersions} >= 0`),
  ],
);

/**
 * Versions. A destroyed version keeps its row (status `deleted`, no
 * ciphertext) so that its revision stays taken and its history visible.
 * The payload is stored only as AES-256-GCM ciphertext under a per-version
 * data key, itself wrapped by a master key of the key ring.
 */
export const secretVersions = pgTable(
  "secret_versions",
  {
    secretId: uuid("secret_id")
      .notNull()
      .references(() => secrets.id, { onDelete: "cascade" }),
    revision: integer("revision").notNull(),
    status: text("status").notNull(),
    description: text("description").notNull().default(""),
    expiresAt: ts("expires_at"),
    expiresOnceAccessed: boolean("expires_once_accessed"),
    ephemeralAction: text("ephemeral_action"),
    dataCrc32: bigint("data_crc32", { mode: "number" }).notNull(),
    keyId: text("key_id"),
    wrappedKey: bytea("wrapped_key"),
    ciphertext: bytea("ciphertext"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
    deletionRequestedAt: ts("deletion_requested_at"),
    deletedAt: ts("deleted_at"),
    /** Set when a single access consumed the version. */
    consumedAt: ts("consumed_at"),
  },
  (t) => [
    primaryKey({ columns: [t.secretId, t.revision] }),
    index("secret_versions_expiry_idx")
      .on(t.expiresAt)
      .where(sql`${t.status} = 'enabled' and ${t.expiresAt} is not null`),
    index("secret_versions_deletion_idx")
      .on(t.deletionRequestedAt)
      .where(sql`${t.status} = 'scheduled_for_deletion'`),
  ],
);

/**
 * How many live secrets (not scheduled for deletion) each project has in
 * each region of this database: what the secret quota reads instead of
 * counting them (domain/limits.ts). Kept by a trigger on secrets (migration
 * 0011), so every path that adds, deletes, restores or destroys a secret
 * counts.
 */
export const projectSecretCounts = pgTable(
  "project_secret_counts",
  {
    projectId: uuid("project_id").notNull(),
    region: text("region").notNull(),
    live: integer("live").notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.projectId, t.region] }),
    check("project_secret_counts_live_check", sql`${t.live} >= 0`),
  ],
);

export type SecretRow = typeof secrets.$inferSelect;
export type VersionRow = typeof secretVersions.$inferSelect;

/**
 * Projects, tokens and admin-call audit events live in the home (default)
 * region's database; the tables exist in every region's schema so that one
 * migration set serves all.
 */
export const projects = pgTable(
  "projects",
  {
    id: uuid("id").primaryKey(),
    /** Unique per installation (exact, case-sensitive comparison). */
    name: text("name").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("projects_name_key").on(t.name)],
);

/** A grant as stored in a token's `grants` column. */
export interface StoredGrant {
  projectId: string;
  role: string;
  pathPrefix: string;
}

/**
 * Access tokens. Only a SHA-256 of the value is stored: the value is 256
 * random bits (122 for a Scaleway-style secret key), so a fast hash is
 * enough and lookups stay one index probe. `prefix` is what a token is
 * recognised by: `coffer_` and 4 characters of a Coffer token (not unique),
 * or the whole access key id of a Scaleway-style key (`SCW...`, not secret,
 * unique: Scaleway's clients name a key by it).
 */
export const tokens = pgTable(
  "tokens",
  {
    id: uuid("id").primaryKey(),
    name: text("name").notNull(),
    prefix: text("prefix").notNull(),
    hash: bytea("hash").notNull(),
    grants: jsonb("grants").$type<StoredGrant[]>().notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    expiresAt: ts("expires_at"),
    revokedAt: ts("revoked_at"),
    /**
     * The token whose call created this one; null for the bootstrap admin
     * token. A token never outlives its creator's expiry, and revoking a
     * token revokes every token it created, transitively (domain/admin/tokens.ts).
     */
    createdBy: uuid("created_by").references((): AnyPgColumn => tokens.id),
    /**
     * For a token from AuthService.ExchangeToken: the identity binding that
     * granted it (null once the binding is deleted: its tokens were revoked
     * then), and the JWT's issuer and subject (kept, for the record).
     */
    bindingId: uuid("binding_id").references((): AnyPgColumn => identityBindings.id, {
      onDelete: "set null",
    }),
    issuer: text("issuer"),
    subject: text("subject"),
  },
  (t) => [
    uniqueIndex("tokens_hash_key").on(t.hash),
    uniqueIndex("tokens_access_key_key").on(t.prefix).where(sql`${t.prefix} like 'SCW%'`),
    index("tokens_created_by_idx").on(t.createdBy).where(sql`${t.createdBy} is not null`),
    index("tokens_binding_idx").on(t.bindingId).where(sql`${t.bindingId} is not null`),
    // The sweeper's retention of exchanged tokens reads them by expiry.
    index("tokens_exchanged_expiry_idx").on(t.expiresAt).where(sql`${t.issuer} is not null`),
  ],
);

/** Where a trusted issuer's keys come from. */
export type KeySource = "discovery" | "jwks_url" | "static";

/**
 * Issuers of JWTs that AuthService.ExchangeToken accepts (home region).
 * `jwks_url` is set for key_source jwks_url, `static_jwks` (a JWKS document
 * of public keys) for static; discovery needs neither.
 */
export const trustedIssuers = pgTable(
  "trusted_issuers",
  {
    id: uuid("id").primaryKey(),
    name: text("name").notNull(),
    issuerUrl: text("issuer_url").notNull(),
    audiences: text("audiences").array().notNull(),
    keySource: text("key_source").$type<KeySource>().notNull(),
    jwksUrl: text("jwks_url"),
    staticJwks: jsonb("static_jwks").$type<{ keys: Record<string, unknown>[] }>(),
    createdAt: ts("created_at").notNull().defaultNow(),
    /** The token whose call created it (no foreign key: a record, kept when that token is swept). */
    createdBy: uuid("created_by"),
  },
  (t) => [
    uniqueIndex("trusted_issuers_name_key").on(t.name),
    uniqueIndex("trusted_issuers_issuer_url_key").on(t.issuerUrl),
    check(
      "trusted_issuers_key_source_check",
      sql`(${t.keySource} = 'discovery' and ${t.jwksUrl} is null and ${t.staticJwks} is null)
        or (${t.keySource} = 'jwks_url' and ${t.jwksUrl} is not null and ${t.staticJwks} is null)
        or (${t.keySource} = 'static' and ${t.jwksUrl} is null and ${t.staticJwks} is not null)`,
    ),
  ],
);

/** One claim condition of a binding, as stored. */
export interface StoredCondition {
  claim: string;
  value: string;
  glob: boolean;
}

/**
 * Identity bindings: JWTs of one issuer whose claims match every condition
 * get a token with these grants. Deleted with their issuer.
 */
export const identityBindings = pgTable(
  "identity_bindings",
  {
    id: uuid("id").primaryKey(),
    name: text("name").notNull(),
    issuerId: uuid("issuer_id")
      .notNull()
      .references(() => trustedIssuers.id, { onDelete: "cascade" }),
    conditions: jsonb("conditions").$type<StoredCondition[]>().notNull(),
    grants: jsonb("grants").$type<StoredGrant[]>().notNull(),
    tokenTtlMs: integer("token_ttl_ms").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    /** The token whose call created it (no foreign key, as trusted_issuers.created_by). */
    createdBy: uuid("created_by"),
  },
  (t) => [
    index("identity_bindings_issuer_idx").on(t.issuerId),
    check("identity_bindings_token_ttl_check", sql`${t.tokenTtlMs} between 60000 and 3600000`),
  ],
);

export type TrustedIssuerRow = typeof trustedIssuers.$inferSelect;
export type IdentityBindingRow = typeof identityBindings.$inferSelect;

/**
 * One row per call, allowed or denied. Written in the region where the call
 * acted: in a mutation's own transaction, and before a payload is returned.
 * Never holds a payload or a token value.
 *
 * Exception, so that unauthenticated callers cannot fill the table: calls
 * the chain refuses before any handler runs (no valid token, rate limits)
 * are aggregated, one row per peer address, token, method, outcome and
 * minute, with `count` the number of calls it stands for (rpc/denied-calls.ts).
 * Rows older than `COFFER_AUDIT_RETENTION` are swept (domain/sweeper.ts).
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    id: uuid("id").primaryKey(),
    time: ts("time").notNull().defaultNow(),
    tokenId: uuid("token_id"),
    projectId: uuid("project_id"),
    method: text("method").notNull(),
    secretId: uuid("secret_id"),
    secretPath: text("secret_path"),
    secretName: text("secret_name"),
    revision: integer("revision"),
    outcome: text("outcome").notNull(),
    requestId: text("request_id").notNull(),
    peer: text("peer"),
    /** How many calls the row stands for: 1, or more for aggregated refusals. */
    count: integer("count").notNull().default(1),
    /**
     * For a refusal without a valid token: the display prefix
     * (`coffer_` + 4 characters) of a well-formed token presented, never more.
     */
    tokenPrefix: text("token_prefix"),
    /** The token a token-management call created or revoked. */
    targetTokenId: uuid("target_token_id"),
    /**
     * For ExchangeToken: the JWT's issuer and subject (as the JWT claims
     * them, when it could be read), the binding that matched, and for a
     * refusal, why. Never the JWT.
     */
    issuer: text("issuer"),
    subject: text("subject"),
    bindingId: uuid("binding_id"),
    reason: text("reason"),
  },
  (t) => [
    index("audit_events_time_idx").on(t.time),
    index("audit_events_project_time_idx").on(t.projectId, t.time),
    index("audit_events_secret_time_idx").on(t.secretId, t.time),
    index("audit_events_token_time_idx").on(t.tokenId, t.time),
  ],
);

export type ProjectRow = typeof projects.$inferSelect;
export type TokenRow = typeof tokens.$inferSelect;
export type AuditRow = typeof auditEvents.$inferSelect;

/** A transaction id (`xid8`), as its decimal text: it can exceed 2^53. */
const xid8 = customType<{ data: string; driverData: string }>({
  dataType: () => "xid8",
});

/**
 * The watch outbox: one row per change to a secret or a version, written by
 * triggers (migration 0003) in the transaction that made the change, so no
 * write path can forget its event and no event survives a rollback.
 *
 * Events are ordered by (tx, seq): the writing transaction's id, then the
 * order within it. A reader only takes events whose tx is below the oldest
 * transaction still running (`pg_snapshot_xmin`), so an event that commits
 * late can never land behind a cursor that was already handed out; see
 * db/watch-events.ts.
 */
export const watchEvents = pgTable(
  "watch_events",
  {
    tx: xid8("tx").notNull().default(sql`pg_current_xact_id()`),
    seq: bigint("seq", { mode: "number" }).notNull().generatedAlwaysAsIdentity(),
    occurredAt: ts("occurred_at").notNull().defaultNow(),
    kind: text("kind").notNull(),
    projectId: uuid("project_id").notNull(),
    secretId: uuid("secret_id").notNull(),
    path: text("path").notNull(),
    name: text("name").notNull(),
    previousPath: text("previous_path"),
    previousName: text("previous_name"),
    /** 0 for secret events. */
    revision: integer("revision").notNull().default(0),
    versionStatus: text("version_status"),
    singleAccess: boolean("single_access").notNull().default(false),
  },
  (t) => [
    primaryKey({ columns: [t.tx, t.seq] }),
    index("watch_events_occurred_idx").on(t.occurredAt),
    // A stream catching up reads one project's events in order.
    index("watch_events_project_idx").on(t.projectId, t.tx, t.seq),
  ],
);

/**
 * One row: this database's watch epoch (a random id that makes cursors from
 * another database, or from before a restore, recognisable) and the newest
 * position pruned so far (a cursor at or before it gets a RESYNC).
 */
export const watchState = pgTable("watch_state", {
  id: boolean("id").primaryKey().default(true),
  epoch: uuid("epoch").notNull().default(sql`gen_random_uuid()`),
  prunedTx: xid8("pruned_tx").notNull().default(sql`'0'::xid8`),
  prunedSeq: bigint("pruned_seq", { mode: "number" }).notNull().default(0),
});

export type WatchEventRow = typeof watchEvents.$inferSelect;
