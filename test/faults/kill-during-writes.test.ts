import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { type CofferClient, createCofferClient, VersionStatus } from "@coffer/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { type FreshDatabase, freshDatabase, postgresMissing } from "./support/postgres.ts";
import { failureOf, tally, until } from "./support/wait.ts";

/**
 * kill -9 of the server in the middle of a write load, on Postgres: after a
 * restart on the same database, every acknowledged CreateSecretVersion is
 * there and decrypts to its payload, and nothing half-written is visible.
 */

const SECRETS = 4;
const WRITERS = 16;
/** Each writer stops after this many acknowledged versions, if not killed first. */
const PER_WRITER = 60;
/** The server is killed once this many versions have been acknowledged. */
const KILL_AFTER = 150;

describe("kill -9 of the server during writes, on Postgres", runUnless(postgresMissing), () => {
  let dir: string | undefined;
  let db: FreshDatabase | undefined;
  let server: ServerProcess | undefined;
  let env: Record<string, string> = {};

  beforeAll(async () => {
    dir = await makeTempDir("faults-kill");
    db = await freshDatabase("kill");
    env = { ...db.env, COFFER_BOOTSTRAP_TOKEN: newToken(), COFFER_DATA_DIR: dir };
    server = await startServer({ env });
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await db?.drop();
    await removeTempDir(dir);
  });

  it("keeps every acknowledged version, whole, and no torn one", async () => {
    const first = server as ServerProcess;
    const grpc = (s: ServerProcess): CofferClient =>
      createCofferClient({ url: s.grpcUrl, protocol: "grpc", token: s.token, timeoutMs: 10_000 });
    const client = grpc(first);
    const projectId = await first.createProject();
    const secretIds: string[] = [];
    for (let s = 0; s < SECRETS; s++) {
      const { secret } = await client.createSecret({ projectId, path: "/kill", name: `s${s}` });
      secretIds.push(secret?.id as string);
    }

    // Every payload is distinct and names its writer and sequence; its tail
    // is random so that no two runs share one.
    const sent = new Map<string, Set<string>>(secretIds.map((id) => [id, new Set()]));
    const acked = new Map<string, Map<number, string>>(secretIds.map((id) => [id, new Map()]));
    let ackCount = 0;
    const failures: string[] = [];
    const duplicates: number[] = [];
    const writer = async (w: number) => {
      const secretId = secretIds[w % SECRETS] as string;
      for (let i = 0; i < PER_WRITER; i++) {
        const payload = `w${w}-i${i}-${randomBytes(24).toString("hex")}`;
        sent.get(secretId)?.add(payload);
        let revision: number;
        try {
          const { version } = await client.createSecretVersion({
            secretId,
            data: Buffer.from(payload),
          });
          revision = version?.revision as number;
        } catch (err) {
          // The server is gone: this writer stops (its last payload may or
          // may not have committed).
          failures.push(failureOf(err));
          return;
        }
        const mine = acked.get(secretId) as Map<number, string>;
        // A revision given out twice would be a broken promise of its own.
        if (mine.has(revision)) duplicates.push(revision);
        mine.set(revision, payload);
        ackCount++;
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    await until(`${KILL_AFTER} versions are acknowledged`, () => ackCount >= KILL_AFTER, 60_000);
    first.kill();
    const exit = await first.exited;
    await Promise.all(writers);
    expect(exit.signal).toBe("SIGKILL");
    expect(duplicates).toEqual([]);
    // The kill came mid-load: some writers were cut off.
    expect(failures.length).toBeGreaterThan(0);
    // A lost connection, never an answer from a server that got it wrong.
    expect(Object.keys(tally(failures)).filter((c) => c !== "connection lost")).toEqual([]);

    server = await startServer({ env });
    const after = grpc(server);

    let checked = 0;
    for (const secretId of secretIds) {
      const mine = acked.get(secretId) as Map<number, string>;
      const payloads = sent.get(secretId) as Set<string>;
      const { secret } = await after.getSecret({ secretId });
      const { versions } = await after.listSecretVersions({
        secretId,
        pageSize: 1000,
        status: [
          VersionStatus.ENABLED,
          VersionStatus.DISABLED,
          VersionStatus.SCHEDULED_FOR_DELETION,
          VersionStatus.DELETED,
        ],
      });
      const revisions = versions.map((v) => v.revision).sort((x, y) => x - y);
      // Revisions are 1, 2, 3 ... with no hole, and the secret's count agrees.
      expect(revisions).toEqual(Array.from({ length: revisions.length }, (_, i) => i + 1));
      expect(secret?.versionCount).toBe(revisions.length);
      // Every acknowledged revision is there.
      for (const revision of mine.keys()) expect(revisions).toContain(revision);

      const seen = new Set<string>();
      for (const v of versions) {
        expect(v.status).toBe(VersionStatus.ENABLED);
        const read = await after.accessSecretVersion({ secretId, revision: String(v.revision) });
        const data = Buffer.from(read.data);
        expect(data.length).toBeGreaterThan(0);
        expect(read.dataCrc32).toBe(crc32(data));
        const text = data.toString();
        const ack = mine.get(v.revision);
        if (ack !== undefined) {
          expect(text, `acknowledged revision ${v.revision}`).toBe(ack);
        } else {
          // Committed but its answer was lost to the kill: whole, and sent.
          expect(payloads.has(text), `revision ${v.revision} holds a payload never sent`).toBe(
            true,
          );
        }
        expect(seen.has(text), `one payload stored twice (revision ${v.revision})`).toBe(false);
        seen.add(text);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(KILL_AFTER);

    // And the restarted server takes writes again where the revisions left off.
    const secretId = secretIds[0] as string;
    const before = await after.getSecret({ secretId });
    const { version } = await after.createSecretVersion({ secretId, data: Buffer.from("again") });
    expect(version?.revision).toBe((before.secret?.versionCount ?? 0) + 1);
  }, 120_000);
});
