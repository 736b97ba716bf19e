import type { KeyRing } from "../crypto/key-ring.ts";
import type { AccessQueues } from "../db/access-queue.ts";
import type { Database, Db } from "../db/client.ts";
import { invalid } from "./errors.ts";

/** What the domain functions need, built once in the composition root. */
export interface DomainDeps {
  regions: Regions;
  /** Read on every call, so that a key rotation takes effect without a restart. */
  keyRing: () => KeyRing;
  deletionWindowMs: number;
  /**
   * Called after a transaction that changed secrets or versions commits:
   * wakes the region's watch streams on every replica.
   */
  announce: (region: string) => void;
  /** How long watch events are kept (the sweeper prunes older ones). */
  watchRetentionMs: number;
  /** How long audit events are kept (`COFFER_AUDIT_RETENTION`; absent: the sweeper's default). */
  auditRetentionMs?: number;
  limits: DomainLimits;
  /** Group commit: every access goes through its region database's queue (db/access-queue.ts). */
  accessQueues: AccessQueues;
  /** Told of each batch of creates (domain/create-batch.ts) as it starts: its region, its size, how long each waited (seconds). */
  onCreateBatch?: (region: string, size: number, waitsSeconds: readonly number[]) => void;
}

/**
 * Quotas the domain enforces, from `COFFER_MAX_SECRETS_PER_PROJECT` and
 * `COFFER_MAX_VERSIONS_PER_SECRET`: a create past one is refused with
 * resource_exhausted.
 */
export interface DomainLimits {
  /** Live secrets (not scheduled for deletion) per project, in each region. */
  secretsPerProject: number;
  /** Versions whose payload is not destroyed (status other than `deleted`), per secret. */
  versionsPerSecret: number;
}

/** A region as resolved: its name, its database, and the database's driver. */
export interface RegionDb {
  name: string;
  db: Db;
  /** Unset where a region is made by hand (tests): treated as PGlite's one-at-a-time. */
  driver?: Database["driver"];
}

/** The regions this server serves; each region is its own database. */
export class Regions {
  readonly names: string[];
  readonly defaultRegion: string;

  constructor(private readonly databases: ReadonlyMap<string, Database>) {
    this.names = [...databases.keys()];
    const first = this.names[0];
    if (first === undefined) throw new Error("at least one region is required");
    this.defaultRegion = first;
  }

  /** The region a request names (empty: the default region), with its database. */
  resolve(name: string): Required<RegionDb> {
    const region = name === "" ? this.defaultRegion : name;
    const database = this.databases.get(region);
    if (database === undefined) {
      throw invalid(
        "region",
        `unknown region ${quoteRegion(region)}; this server has: ${this.names.join(", ")}`,
      );
    }
    return { name: region, db: database.db, driver: database.driver };
  }

  all(): { name: string; database: Database }[] {
    return [...this.databases].map(([name, database]) => ({ name, database }));
  }
}

/** A caller's region name for a message: JSON-quoted and cut to 64 characters, so input cannot garble or swell it. */
function quoteRegion(name: string): string {
  const chars = Array.from(name.slice(0, 256));
  return JSON.stringify(chars.length > 64 ? `${chars.slice(0, 64).join("")}...` : name);
}
