import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type CofferClient, createCofferClient, VersionStatus } from "@coffer/client";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type AgentLog,
  type AgentProcess,
  spawnAgent,
  writeAgentConfig,
} from "../support/agent-process.ts";
import { FileReader, type FileReads } from "../support/file-reader.ts";
import { freePort } from "../support/ports.ts";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The agent when things go wrong, with real processes: the server killed
 * with SIGKILL and restarted while versions keep coming, two replicas on one
 * Postgres (agent on one, writes through the other), and a reader that must
 * never see a torn file during 1,000 rapid updates. The single-server tests
 * run on the embedded database and, when TEST_DATABASE_URL is set, on
 * Postgres.
 */

const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error("CI is set but TEST_DATABASE_URL is not: these tests must run on Postgres in CI");
}

/** A place for the server's data: an embedded database folder, or a fresh Postgres database. */
interface Store {
  env: Record<string, string>;
  drop(): Promise<void>;
}

const stores: { name: string; open(dir: string): Promise<Store> }[] = [
  {
    name: "pglite",
    open: async (dir) => ({ env: { COFFER_DATA_DIR: dir }, drop: async () => {} }),
  },
  ...(testDatabaseUrl ? [{ name: "postgres", open: (dir: string) => postgresStore(dir) }] : []),
];

async function postgresStore(dir: string): Promise<Store> {
  const admin = postgres(testDatabaseUrl as string, { max: 1, onnotice: () => {} });
  const name = `coffer_agent_${randomBytes(6).toString("hex")}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(testDatabaseUrl as string);
  url.pathname = `/${name}`;
  return {
    env: {
      COFFER_DATABASE_URL: url.toString(),
      COFFER_MASTER_KEYS: `e2e-1:${randomBytes(32).toString("base64")}`,
      COFFER_DATA_DIR: dir,
    },
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const contentOf = (file: string) => readFile(file, "utf8").catch(() => undefined);

/** Revisions of a secret the agent logged as created, in the order it received them. */
const createdRevisions = (agent: AgentProcess, secretId: string) =>
  agent
    .logs()
    .filter(
      (l: AgentLog) =>
        l.msg === "event received" && l.kind === "VERSION_CREATED" && l.secretId === secretId,
    )
    .map((l) => Number(l.revision));

/** Every revision the server holds for a secret (any status). */
async function allRevisions(client: CofferClient, secretId: string): Promise<number[]> {
  const { versions } = await client.listSecretVersions({
    secretId,
    pageSize: 1000,
    status: [VersionStatus.ENABLED, VersionStatus.DISABLED],
  });
  return versions.map((v) => v.revision).sort((x, y) => x - y);
}

describe.each(stores)("coffer-agent through failures, on $name", (store) => {
  let dir: string | undefined;
  let data: Store | undefined;
  let env: Record<string, string> = {};
  let server: ServerProcess | undefined;
  let client: CofferClient;
  const agents: AgentProcess[] = [];
  let projectId = "";

  const connect = (s: ServerProcess) =>
    createCofferClient({ url: s.httpUrl, token: s.token, timeoutMs: 10_000 });

  beforeAll(async () => {
    dir = await makeTempDir("agent-resilience");
    data = await store.open(path.join(dir, "server"));
    env = {
      ...data.env,
      COFFER_BOOTSTRAP_TOKEN: newToken(),
      COFFER_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
      COFFER_GRPC_LISTEN: `127.0.0.1:${await freePort()}`,
      COFFER_MAX_VERSIONS_PER_SECRET: "5000",
    };
    server = await startServer({ env });
    client = connect(server);
    projectId = await server.createProject();
  });

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop(5_000)));
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await data?.drop();
    await removeTempDir(dir);
  });

  async function agentFor(
    name: string,
    secretId: string,
  ): Promise<{ agent: AgentProcess; file: string }> {
    const config = await writeAgentConfig(path.join(dir as string, `${name}.yaml`), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: `${name}.state.json`,
      heartbeat_interval: "1s",
      secrets: [{ id: secretId, destination: `${name}.txt`, mode: "0600" }],
    });
    const agent = spawnAgent({ config, token: server?.token });
    agents.push(agent);
    await agent.waitForLog((l) => l.msg === "ready: every file rendered or found absent");
    return { agent, file: path.join(dir as string, `${name}.txt`) };
  }

  it("ends with the newest version and every event after the server is killed and restarted mid-stream", async () => {
    const { secret } = await client.createSecret({
      projectId,
      path: "/ha",
      name: "restarted",
      firstVersion: { data: Buffer.from("version 1") },
    });
    const id = secret?.id as string;
    const { agent, file } = await agentFor("restarted", id);
    expect(await contentOf(file)).toBe("version 1");

    // A writer that keeps going through the outage, retrying each version
    // until one is acknowledged (a lost answer may leave an extra version:
    // that one must reach the agent too).
    const acknowledged: { revision: number; data: string }[] = [];
    const writer = (async () => {
      for (let i = 2; i <= 40; i++) {
        for (;;) {
          try {
            const data = `version ${i}`;
            const { version } = await client.createSecretVersion({
              secretId: id,
              data: Buffer.from(data),
            });
            acknowledged.push({ revision: version?.revision as number, data });
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await until("a few versions are in", async () => acknowledged.length >= 10);
    server?.kill();
    await server?.exited;
    await new Promise((r) => setTimeout(r, 500));
    server = await startServer({ env });
    client = connect(server);
    await writer;

    const last = acknowledged.at(-1) as { revision: number; data: string };
    await until(
      "the file holds the newest version",
      async () => (await contentOf(file)) === last.data,
    );
    const existing = await allRevisions(client, id);
    await until("the agent has heard of every version", async () =>
      existing.slice(1).every((r) => createdRevisions(agent, id).includes(r)),
    );
    expect(
      agent.logs().filter((l) => l.msg === "reconnecting to the watch stream").length,
    ).toBeGreaterThan(0);
  });

  it("never shows a reader a torn or missing file during 1,000 rapid updates", async () => {
    const big = (i: number) => `begin ${i} ${"x".repeat(8 * 1024)} end ${i}\n`;
    const { secret } = await client.createSecret({
      projectId,
      path: "/rapid",
      name: "updates",
      firstVersion: { data: Buffer.from(big(1)) },
    });
    const id = secret?.id as string;
    const { file } = await agentFor("rapid", id);
    expect(await contentOf(file)).toBe(big(1));

    const reader = new FileReader(file, path.join(dir as string, "reader"));
    const updates = 1000;
    let seen: FileReads;
    try {
      // Four writers at a time: each version still commits whole, in some order.
      let next = 2;
      await Promise.all(
        [0, 1, 2, 3].map(async () => {
          for (let i = next++; i <= updates + 1; i = next++) {
            await client.createSecretVersion({ secretId: id, data: Buffer.from(big(i)) });
          }
        }),
      );
      // The newest revision holds whichever payload committed last.
      const newest = Buffer.from(
        (await client.accessSecretVersion({ secretId: id, revision: "latest" })).data,
      ).toString();
      await until(
        "the file holds the newest version",
        async () => (await contentOf(file)) === newest,
      );
      seen = await reader.stop();
    } finally {
      // A failed run must not leave the reader spinning.
      reader.kill();
    }
    const written = new Set(Array.from({ length: updates + 1 }, (_, i) => big(i + 1)));
    expect(seen.errors).toEqual([]);
    expect(seen.reads).toBeGreaterThan(updates);
    // Many versions went by under the reader, and each read was one of them, whole.
    expect(seen.contents.length).toBeGreaterThan(10);
    for (const content of seen.contents) expect(written.has(content)).toBe(true);
  }, 180_000);
});

const onPostgres = runUnless(
  testDatabaseUrl ? undefined : "needs TEST_DATABASE_URL (two replicas share one Postgres)",
);

describe("coffer-agent with two replicas on one Postgres", onPostgres, () => {
  let dir: string | undefined;
  let data: Store | undefined;
  const servers: ServerProcess[] = [];
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    dir = await makeTempDir("agent-replicas");
    data = await postgresStore(path.join(dir, "server"));
    const env = { ...data.env, COFFER_BOOTSTRAP_TOKEN: newToken() };
    servers.push(await startServer({ env }), await startServer({ env }));
  });

  afterAll(async () => {
    await agent?.stop(5_000);
    for (const s of servers) s.kill();
    await Promise.all(servers.map((s) => s.exited));
    await data?.drop();
    await removeTempDir(dir);
  });

  it("keeps the file of an agent on one replica in step with writes through the other", async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const writer = createCofferClient({ url: b.grpcUrl, protocol: "grpc", token: b.token });
    const projectId = await b.createProject();
    const { secret } = await writer.createSecret({
      projectId,
      path: "/replicas",
      name: "db",
      firstVersion: { data: Buffer.from("one") },
    });
    const id = secret?.id as string;
    const config = await writeAgentConfig(path.join(dir as string, "agent.yaml"), {
      server: { url: a.httpUrl },
      project_id: projectId,
      state_file: "state.json",
      heartbeat_interval: "1s",
      secrets: [{ path: "/replicas", name: "db", destination: "db.txt" }],
    });
    const file = path.join(dir as string, "db.txt");
    agent = spawnAgent({ config, token: a.token });
    await until("the first version is in the file", async () => (await contentOf(file)) === "one");
    for (let i = 2; i <= 20; i++) {
      await writer.createSecretVersion({ secretId: id, data: Buffer.from(`v${i}`) });
    }
    await until("the newest version is in the file", async () => (await contentOf(file)) === "v20");
    await writer.disableSecretVersion({ secretId: id, revision: "20" });
    await until("the previous version is back", async () => (await contentOf(file)) === "v19");
    const revisions = createdRevisions(agent, id);
    expect(revisions).toEqual(Array.from({ length: 19 }, (_, i) => i + 2));
  });
});
