import { randomBytes } from "node:crypto";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "@coffer/api/grpc/health/v1";
import {
  type CofferClient,
  createCofferClient,
  createCofferTransport,
  WatchEventKind,
} from "@coffer/client";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { describeExit } from "../support/tsx-process.ts";
import { PrivatePostgres, privatePostgresMissing } from "./support/postgres.ts";
import { codeName, sleep, tally, until } from "./support/wait.ts";

/**
 * Postgres stopped and started again under a read and write load, on a
 * private cluster (the machine's shared Postgres is never touched): while
 * it is down every call fails with UNAVAILABLE, which a client may retry,
 * soon (not at its deadline), and health says NOT_SERVING; once it is back
 * the same server process serves again within seconds, and says SERVING.
 * Runs wherever the Postgres server binaries are installed, with or without
 * TEST_DATABASE_URL; skips, saying so, where they are not.
 */

/** How long Postgres stays down. */
const DOWN_MS = 4_000;
/** How soon after Postgres accepts connections again the server must serve reads and writes. */
const RECOVERY_BOUND_MS = 5_000;
/**
 * How long a failing call may take: well under the clients' 10 s deadline, so
 * that calls are refused rather than queued until they time out. The server
 * waits at most 5 s for a connection (db/client.ts); refused ones fail sooner.
 */
const FAIL_FAST_MS = 6_000;

type Phase = "up" | "down" | "back";

interface Outcome {
  phase: Phase;
  kind: "read" | "write";
  lane: string;
  /** "OK" or the code's name. */
  result: string;
  message?: string;
  startedAt: number;
  endedAt: number;
}

describe("Postgres stopped and started under load", runUnless(privatePostgresMissing), () => {
  let dir: string | undefined;
  let pg: PrivatePostgres | undefined;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    dir = await makeTempDir("faults-pg-restart");
    pg = await PrivatePostgres.create();
    server = await startServer({
      env: {
        COFFER_DATABASE_URL: pg.url,
        COFFER_MASTER_KEYS: `faults-1:${randomBytes(32).toString("base64")}`,
        COFFER_BOOTSTRAP_TOKEN: newToken(),
        COFFER_DATA_DIR: dir,
        COFFER_HEALTH_INTERVAL: "200ms",
      },
    });
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await pg?.destroy();
    await removeTempDir(dir);
  });

  it.each(["fast", "immediate"] as const)(
    "answers UNAVAILABLE while Postgres is down (stop -m %s), then serves again without a restart",
    async (mode) => {
      const s = server as ServerProcess;
      const cluster = pg as PrivatePostgres;
      const pid = s.pid;
      const opts = { token: s.token, timeoutMs: 10_000 };
      const lanes: [string, CofferClient][] = [
        ["grpc", createCofferClient({ url: s.grpcUrl, protocol: "grpc", ...opts })],
        ["connect", createCofferClient({ url: s.httpUrl, ...opts })],
      ];
      const health = createClient(
        Health,
        createCofferTransport({ url: s.grpcUrl, protocol: "grpc", timeoutMs: 5_000 }),
      );
      // A server that died says so, with the end of its stderr (a crash's stack
      // trace; the server never writes payloads or tokens there), rather than
      // leaving a wait below to time out.
      const alive = () => {
        if (s.exit === undefined) return true;
        const tail = s.stderr.trim().split("\n").slice(-6).join("\n");
        throw new Error(`coffer-server exited (${describeExit(s.exit)}):\n${tail}`);
      };
      const healthIs = async (status: Serving) =>
        alive() && (await health.check({ service: "" }).catch(() => undefined))?.status === status;
      const projectId = await s.createProject();
      const grpc = lanes[0]?.[1] as CofferClient;
      const { secret } = await grpc.createSecret({
        projectId,
        path: "/pg",
        name: `restart-${mode}`,
        firstVersion: { data: Buffer.from("first") },
      });
      const secretId = secret?.id as string;

      let phase: Phase = "up";
      let running = true;
      const outcomes: Outcome[] = [];
      const loop = async (lane: string, client: CofferClient, kind: "read" | "write") => {
        for (let i = 0; running; i++) {
          const at = phase;
          const startedAt = Date.now();
          try {
            if (kind === "read") {
              const read = await client.accessSecretVersion({ secretId, revision: "1" });
              if (Buffer.from(read.data).toString() !== "first") throw new Error("wrong payload");
            } else {
              await client.createSecretVersion({ secretId, data: Buffer.from(`${lane}-${i}`) });
            }
            outcomes.push({ phase: at, kind, lane, result: "OK", startedAt, endedAt: Date.now() });
          } catch (err) {
            outcomes.push({
              phase: at,
              kind,
              lane,
              result: codeName(err),
              message: (err as Error).message,
              startedAt,
              endedAt: Date.now(),
            });
            // Failing calls come back fast: do not spin.
            await sleep(20);
          }
        }
      };
      const load = lanes.flatMap(([lane, client]) => [
        loop(lane, client, "read"),
        loop(lane, client, "read"),
        loop(lane, client, "write"),
      ]);
      try {
        await until("the load runs", () => outcomes.filter((o) => o.result === "OK").length >= 50);
        phase = "down";
        await cluster.stop(mode);
        const downAt = Date.now();
        await until("health says NOT_SERVING", () => healthIs(Serving.NOT_SERVING), DOWN_MS);
        await sleep(Math.max(0, downAt + DOWN_MS - Date.now()));
        await until(
          "calls fail while Postgres is down",
          () => alive() && outcomes.some((o) => o.endedAt > downAt && o.result !== "OK"),
          10_000,
        );
        phase = "back";
        await cluster.start();
        const backAt = Date.now();
        const servedAgain = (kind: "read" | "write") =>
          outcomes.some((o) => o.phase === "back" && o.kind === kind && o.result === "OK");
        await until(
          "the server serves reads and writes again",
          () => alive() && servedAgain("read") && servedAgain("write"),
          RECOVERY_BOUND_MS + 5_000,
        );
        const recoveredMs =
          Math.max(
            ...(["read", "write"] as const).map(
              (kind) =>
                outcomes.find((o) => o.phase === "back" && o.kind === kind && o.result === "OK")
                  ?.endedAt ?? Number.POSITIVE_INFINITY,
            ),
          ) - backAt;
        console.log(
          `postgres stop -m ${mode}: recovered in ${recoveredMs} ms; longest call ${Math.max(...outcomes.map((o) => o.endedAt - o.startedAt))} ms; outcomes by phase`,
          JSON.stringify(
            Object.fromEntries(
              (["up", "down", "back"] as const).map((p) => [
                p,
                tally(outcomes.filter((o) => o.phase === p).map((o) => `${o.kind} ${o.result}`)),
              ]),
            ),
          ),
        );
        expect(recoveredMs).toBeLessThan(RECOVERY_BOUND_MS);
        await until("health says SERVING", () => healthIs(Serving.SERVING), 5_000);
      } finally {
        running = false;
        await Promise.all(load);
      }

      // Every failure, in any phase, was UNAVAILABLE: never INTERNAL or UNKNOWN.
      const wrong = outcomes.filter((o) => o.result !== "OK" && o.result !== "Unavailable");
      expect(wrong.map((o) => `${o.phase} ${o.lane} ${o.kind}: ${o.result}: ${o.message}`)).toEqual(
        [],
      );
      expect(outcomes.filter((o) => o.phase === "down" && o.result === "Unavailable").length).toBe(
        outcomes.filter((o) => o.phase === "down" && o.result !== "OK").length,
      );
      expect(outcomes.some((o) => o.phase === "down" && o.result === "Unavailable")).toBe(true);
      // Refused soon, not held until the deadline.
      const slow = outcomes.filter(
        (o) => o.result !== "OK" && o.endedAt - o.startedAt >= FAIL_FAST_MS,
      );
      expect(
        slow.map((o) => `${o.phase} ${o.lane} ${o.kind}: ${o.endedAt - o.startedAt} ms`),
      ).toEqual([]);
      // The same process, never restarted.
      expect(s.exit).toBeUndefined();
      expect(s.pid).toBe(pid);

      // Its watch feed (LISTEN/NOTIFY) is back too: a change reaches a new stream.
      const watch = new AbortController();
      const timer = setTimeout(() => watch.abort(), 15_000);
      try {
        const stream = grpc.watchSecrets(
          { projectId },
          { signal: watch.signal, timeoutMs: 20_000 },
        );
        let wrote = false;
        let revision = 0;
        for await (const event of stream) {
          if (!wrote) {
            // The first message (a heartbeat or an event) says the stream is open.
            wrote = true;
            const { version } = await grpc.createSecretVersion({
              secretId,
              data: Buffer.from("after"),
            });
            revision = version?.revision as number;
          }
          if (event.kind === WatchEventKind.VERSION_CREATED && event.revision === revision) break;
        }
        expect(revision).toBeGreaterThan(0);
      } finally {
        clearTimeout(timer);
        watch.abort();
      }
    },
    90_000,
  );
});
