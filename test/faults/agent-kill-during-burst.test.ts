import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type CofferClient, createCofferClient } from "@coffer/client";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { type AgentProcess, spawnAgent, writeAgentConfig } from "../support/agent-process.ts";
import { FileReader } from "../support/file-reader.ts";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { errorLines } from "./support/diagnose.ts";
import { type FreshDatabase, freshDatabase, postgresMissing } from "./support/postgres.ts";
import { sleep, until } from "./support/wait.ts";

/**
 * The agent killed with SIGKILL, again and again, while a burst of versions
 * is written: a reader that reads the destination file all the time only
 * ever sees a complete payload of a real version, and the agent, started
 * once more, ends with the newest version.
 */

const UPDATES = 600;
const WRITERS = 4;
/** The agent is killed (and started again) this many times during the burst. */
const KILLS = 4;
/** Each writer's pause between two versions. */
const PACE_MS = 40;

/**
 * A recognisable payload: fixed length, numbered, random, and ending with a
 * checksum of the rest, so that a torn or mixed file cannot pass for one.
 */
function payload(i: number): string {
  const body = `v${String(i).padStart(6, "0")}-${randomBytes(1536).toString("hex")}`;
  const sum = createHash("sha256").update(body).digest("hex");
  return `${body}-${sum}\n`;
}

function wellFormed(content: string): boolean {
  const m = /^(v\d{6}-[0-9a-f]{3072})-([0-9a-f]{64})\n$/.exec(content);
  return (
    m !== null &&
    createHash("sha256")
      .update(m[1] as string)
      .digest("hex") === m[2]
  );
}

describe("coffer-agent killed during a burst of updates", runUnless(postgresMissing), () => {
  let dir: string | undefined;
  let db: FreshDatabase | undefined;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let reader: FileReader | undefined;

  beforeAll(async () => {
    dir = await makeTempDir("faults-agent-kill");
    db = await freshDatabase("agent");
    server = await startServer({
      env: {
        ...db.env,
        COFFER_BOOTSTRAP_TOKEN: newToken(),
        COFFER_DATA_DIR: path.join(dir, "server"),
        COFFER_MAX_VERSIONS_PER_SECRET: String(UPDATES + 10),
      },
    });
  });

  afterAll(async () => {
    reader?.kill();
    agent?.kill();
    await agent?.exited;
    server?.kill();
    await server?.exited;
    await db?.drop();
    await removeTempDir(dir);
  });

  it("leaves a complete payload of a real version in the file at every instant", async () => {
    const s = server as ServerProcess;
    const work = dir as string;
    onTestFailed(() => {
      console.error(errorLines(s));
      console.error(errorLines(agent));
    });
    const client: CofferClient = createCofferClient({
      url: s.grpcUrl,
      protocol: "grpc",
      token: s.token,
      timeoutMs: 10_000,
    });
    const projectId = await s.createProject();
    const sent = new Set<string>();
    const first = payload(0);
    sent.add(first);
    const { secret } = await client.createSecret({
      projectId,
      path: "/burst",
      name: "target",
      firstVersion: { data: Buffer.from(first) },
    });
    const secretId = secret?.id as string;
    const config = await writeAgentConfig(path.join(work, "agent.yaml"), {
      server: { url: s.httpUrl },
      project_id: projectId,
      state_file: "agent.state.json",
      heartbeat_interval: "1s",
      secrets: [{ id: secretId, destination: "target.txt", mode: "0600" }],
    });
    const file = path.join(work, "target.txt");
    const startAgent = () => {
      agent = spawnAgent({ config, token: s.token });
      return agent;
    };
    await startAgent().waitForLog((l) => l.msg === "ready: every file rendered or found absent");
    expect(await readFile(file, "utf8")).toBe(first);

    reader = new FileReader(file, path.join(work, "reader"));
    let written = 0;
    let next = 1;
    const burst = Promise.all(
      Array.from({ length: WRITERS }, async () => {
        for (let i = next++; i <= UPDATES; i = next++) {
          const data = payload(i);
          sent.add(data);
          await client.createSecretVersion({ secretId, data: Buffer.from(data) });
          written++;
          // Rapid, but spread over seconds, so that the burst outlasts
          // several agent restarts.
          await sleep(PACE_MS);
        }
      }),
    );
    // Kill the agent each time it has written a file since it (re)started,
    // while the burst still runs: kills land mid-render as often as not.
    let kills = 0;
    const filesWritten = (a: AgentProcess) =>
      a.logs().filter((l) => l.msg === "file written").length;
    try {
      while (kills < KILLS && written < UPDATES) {
        const current = agent as AgentProcess;
        await until(
          "the agent writes a file",
          () => filesWritten(current) > 1 || written >= UPDATES,
          30_000,
        );
        if (written >= UPDATES) break;
        current.kill();
        const exit = await current.exited;
        expect(exit.signal).toBe("SIGKILL");
        kills++;
        startAgent();
      }
      await burst;
    } finally {
      await burst.catch(() => {});
    }
    // The burst must have outlasted at least two kills for the test to mean anything.
    expect(kills).toBeGreaterThanOrEqual(2);

    // The newest revision holds whichever payload committed last.
    const newest = Buffer.from(
      (await client.accessSecretVersion({ secretId, revision: "latest" })).data,
    ).toString();
    await until(
      "the agent converges to the newest version",
      async () => (await readFile(file, "utf8").catch(() => "")) === newest,
      30_000,
    );
    await sleep(200);
    const seen = await (reader as FileReader).stop();
    console.log(
      `agent killed ${kills} times during ${UPDATES} updates; the reader read ${seen.reads} times and saw ${seen.contents.length} versions`,
    );
    expect(seen.errors).toEqual([]);
    expect(seen.reads).toBeGreaterThan(UPDATES);
    expect(seen.contents.length).toBeGreaterThan(KILLS);
    const torn = seen.contents.filter((c) => !wellFormed(c)).length;
    const unknown = seen.contents.filter((c) => !sent.has(c)).length;
    expect({ torn, unknown }).toEqual({ torn: 0, unknown: 0 });
    expect(seen.contents.at(-1)).toBe(newest);
  }, 150_000);
});
