import { randomBytes } from "node:crypto";
import path from "node:path";
import { type CofferClient, createCofferClient } from "@coffer/client";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { type AgentProcess, spawnAgent, writeAgentConfig } from "../support/agent-process.ts";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { errorLines } from "./support/diagnose.ts";
import { type FreshDatabase, freshDatabase, postgresMissing } from "./support/postgres.ts";
import { failureOf, tally, until } from "./support/wait.ts";

/**
 * SIGTERM to a server under a unary load of reads and writes, with open
 * WatchSecrets streams and an agent: calls in flight complete, calls that
 * come too late are turned away with UNAVAILABLE, watch streams end with
 * UNAVAILABLE so that watchers reconnect elsewhere, and the process exits 0
 * within its grace period.
 */

/** COFFER_SHUTDOWN_GRACE of the server: past it, calls still running are cut. */
const GRACE_MS = 10_000;
/** The process must be gone this soon after SIGTERM. */
const EXIT_BOUND_MS = GRACE_MS + 5_000;
const LANES = 16;
const WATCHERS = 8;

interface Call {
  lane: string;
  startedAt: number;
  endedAt: number;
  /** "OK", or what {@link failureOf} says. */
  result: string;
  message?: string;
}

describe("SIGTERM to a server under load, on Postgres", runUnless(postgresMissing), () => {
  let dir: string | undefined;
  let db: FreshDatabase | undefined;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    dir = await makeTempDir("faults-sigterm");
    db = await freshDatabase("sigterm");
    server = await startServer({
      env: {
        ...db.env,
        COFFER_BOOTSTRAP_TOKEN: newToken(),
        COFFER_DATA_DIR: path.join(dir, "server"),
        COFFER_SHUTDOWN_GRACE: `${GRACE_MS}ms`,
      },
    });
  });

  afterAll(async () => {
    await agent?.stop(5_000);
    server?.kill();
    await server?.exited;
    await db?.drop();
    await removeTempDir(dir);
  });

  it("completes calls in flight, ends watch streams with UNAVAILABLE, and exits 0", async () => {
    const s = server as ServerProcess;
    const work = dir as string;
    onTestFailed(() => {
      console.error(errorLines(s));
    });
    const opts = { token: s.token, timeoutMs: 20_000 };
    const grpc = createCofferClient({ url: s.grpcUrl, protocol: "grpc", ...opts });
    // HTTP/2 only: a request written on an HTTP/1.1 keep-alive connection
    // while the server closes it is the well-known keep-alive race, an
    // ECONNRESET that says nothing about draining.
    const connect = createCofferClient({ url: s.httpUrl, httpVersion: "2", ...opts });
    const projectId = await s.createProject();
    const data = randomBytes(2048);
    const { secret } = await grpc.createSecret({
      projectId,
      path: "/sigterm",
      name: "busy",
      firstVersion: { data },
    });
    const secretId = secret?.id as string;

    // An agent, following the secret.
    const config = await writeAgentConfig(path.join(work, "agent.yaml"), {
      server: { url: s.httpUrl },
      project_id: projectId,
      state_file: "agent.state.json",
      heartbeat_interval: "1s",
      secrets: [{ id: secretId, destination: "busy.bin", mode: "0600" }],
    });
    agent = spawnAgent({ config, token: s.token });
    await agent.waitForLog((l) => l.msg === "ready: every file rendered or found absent");

    // Watch streams on both listeners; each records how it ended.
    const watchEnds: { lane: string; result: string; message: string; at: number }[] = [];
    const watchAbort = new AbortController();
    const opened: string[] = [];
    const watchers = Array.from({ length: WATCHERS }, async (_, i) => {
      const [lane, client] = i % 2 ? ["grpc", grpc] : ["connect", connect];
      try {
        const stream = client.watchSecrets(
          { projectId, heartbeatInterval: { seconds: 1n, nanos: 0 } },
          { signal: watchAbort.signal, timeoutMs: 60_000 },
        );
        let first = true;
        for await (const _ of stream) {
          if (first) opened.push(lane);
          first = false;
        }
        watchEnds.push({ lane, result: "OK", message: "", at: Date.now() });
      } catch (err) {
        watchEnds.push({
          lane,
          result: failureOf(err),
          message: (err as Error).message,
          at: Date.now(),
        });
      }
    });
    await until("every watch stream is open", () => opened.length === WATCHERS);

    // Unary lanes: reads and writes back to back, until turned away.
    const calls: Call[] = [];
    let running = true;
    const lane = async (name: string, client: CofferClient, write: boolean) => {
      for (let i = 0; running; i++) {
        const startedAt = Date.now();
        try {
          if (write) {
            await client.createSecretVersion({ secretId, data: Buffer.from(`${name}-${i}`) });
          } else {
            const read = await client.accessSecretVersion({ secretId, revision: "1" });
            if (!Buffer.from(read.data).equals(data)) throw new Error("wrong payload");
          }
          calls.push({ lane: name, startedAt, endedAt: Date.now(), result: "OK" });
        } catch (err) {
          const result = failureOf(err);
          const message = (err as Error).message;
          calls.push({ lane: name, startedAt, endedAt: Date.now(), result, message });
          if (result === "Unavailable" || result === "connection lost") return;
        }
      }
    };
    const lanes = Array.from({ length: LANES }, (_, i) => {
      const client = i % 2 ? grpc : connect;
      const write = i % 4 < 2;
      return lane(`${i % 2 ? "grpc" : "connect"}-${write ? "write" : "read"}-${i}`, client, write);
    });

    let exitMs = Number.NaN;
    let signalAt = 0;
    try {
      await until("the load runs", () => calls.filter((c) => c.result === "OK").length >= 200);
      signalAt = Date.now();
      s.signal("SIGTERM");
      const exit = await s.waitForExit(EXIT_BOUND_MS + 5_000);
      exitMs = Date.now() - signalAt;
      expect(exit).toEqual({ code: 0, signal: null });
    } finally {
      running = false;
      await Promise.all(lanes);
      watchAbort.abort();
      await Promise.all(watchers);
    }
    console.log(
      `exited ${exitMs} ms after SIGTERM; calls ${JSON.stringify(tally(calls.map((c) => c.result)))}; watch ends ${JSON.stringify(tally(watchEnds.map((w) => w.result)))}`,
    );
    expect(exitMs).toBeLessThan(EXIT_BOUND_MS);

    // Calls in flight when the signal came completed, with their answer.
    const inFlight = calls.filter((c) => c.startedAt < signalAt && c.endedAt >= signalAt);
    expect(inFlight.length).toBeGreaterThan(0);
    expect(
      inFlight.filter((c) => c.result !== "OK").map((c) => `${c.lane}: ${c.result}: ${c.message}`),
    ).toEqual([]);
    // No call, before or after, ended other than OK or UNAVAILABLE.
    expect(
      calls
        .filter((c) => c.result !== "OK" && c.result !== "Unavailable")
        .map((c) => `${c.lane}: ${c.result}: ${c.message}`),
    ).toEqual([]);
    // Each lane was turned away in the end: the server stopped taking calls.
    expect(calls.filter((c) => c.result === "Unavailable").length).toBe(LANES);

    // Every watch stream ended with UNAVAILABLE, before the process exited.
    expect(watchEnds).toHaveLength(WATCHERS);
    expect(
      watchEnds
        .filter((w) => w.result !== "Unavailable" || w.at > signalAt + exitMs)
        .map((w) => `${w.lane}: ${w.result}: ${w.message}`),
    ).toEqual([]);
    // And the agent was told so, and went to reconnect.
    await (agent as AgentProcess).waitForLog(
      (l) => l.msg === "watch stream failed; reconnecting" && l.code === "Unavailable",
      10_000,
    );
  }, 90_000);
});
