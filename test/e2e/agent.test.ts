import { randomBytes } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { type CofferClient, createCofferClient, SecretType } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type AgentLog,
  type AgentProcess,
  spawnAgent,
  startAgentFixture,
  writeAgentConfig,
} from "../support/agent-process.ts";
import { type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The sidecar as a user runs it: `coffer-agent --config agent.yaml` as a
 * real process, with a `secret_access` token (payloads only, no metadata),
 * against a real server on the embedded database. Files follow versions,
 * single-access versions are consumed once across kill -9, and `--once`
 * works as an init container.
 */

const markers: string[] = [];

/** A payload holding a marker that no agent output may contain. */
function payload(label: string, template: (marker: string) => string = (m) => m): string {
  const marker = `MARKER-${label}-${randomBytes(8).toString("hex")}`;
  markers.push(marker);
  return template(marker);
}

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

/** Polls until `check` holds; fails with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const contentOf = (file: string) => readFile(file, "utf8").catch(() => undefined);
const is = (msg: string) => (l: AgentLog) => l.msg === msg;

describe("coffer-agent against a real server", () => {
  let dataDir: string | undefined;
  let work = "";
  let server: ServerProcess | undefined;
  let admin: CofferClient;
  let projectId = "";
  /** secret_access on the whole project: payloads only. */
  let agentToken = "";
  const running: AgentProcess[] = [];

  /** Fixed ports, so that the server can be restarted where the agents expect it. */
  let serverEnv: Record<string, string> = {};

  beforeAll(async () => {
    dataDir = await makeTempDir("agent");
    work = path.join(dataDir, "agent");
    ({
      server,
      serverEnv,
      admin,
      projectId,
      token: agentToken,
    } = await startAgentFixture(dataDir, "agent"));
  });

  afterEach(async () => {
    // Every agent a test started is gone when it ends, and never printed a payload.
    await Promise.all(running.splice(0).map((a) => a.stop(5000)));
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await removeTempDir(dataDir);
  });

  function start(config: string, options: { once?: boolean } = {}): AgentProcess {
    const agent = spawnAgent({ config, token: agentToken, ...options });
    running.push(agent);
    return agent;
  }

  function assertNoPayload(agent: AgentProcess): void {
    for (const marker of markers) {
      expect(agent.stdout).not.toContain(marker);
      expect(agent.stderr).not.toContain(marker);
    }
  }

  async function configFile(name: string, secrets: Record<string, unknown>[], extra = {}) {
    const dir = path.join(work, name);
    await mkdir(dir, { recursive: true });
    return writeAgentConfig(path.join(dir, "agent.yaml"), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: "state.json",
      heartbeat_interval: "1s",
      secrets,
      ...extra,
    });
  }

  it("runs on_change without the agent's token or any COFFER_* setting in its environment", async () => {
    await admin.createSecret({
      projectId,
      path: "/hook",
      name: "app",
      firstVersion: { data: Buffer.from(payload("hook")) },
    });
    const config = await configFile("hook", [{ path: "/hook", name: "app", destination: "app" }], {
      // A real child that prints the environment it was given.
      on_change: { command: ["sh", "-c", 'env > "$PWD/child.env"'], debounce: "10ms" },
    });
    const childEnv = path.join(path.dirname(config), "child.env");
    const agent = spawnAgent({
      config,
      token: agentToken,
      env: { COFFER_TOKEN_FILE: "/run/secrets/coffer-token", AGENT_SIDE_SETTING: "kept" },
    });
    running.push(agent);
    await until("on_change ran", async () => ((await contentOf(childEnv)) ?? "").length > 0);
    const env = (await contentOf(childEnv)) ?? "";
    const names = env.split("\n").map((l) => l.split("=")[0] ?? "");
    expect(names).toContain("AGENT_SIDE_SETTING");
    expect(names).toContain("PATH");
    expect(names.filter((n) => n.startsWith("COFFER_"))).toEqual([]);
    expect(env).not.toContain(agentToken);
  });

  it("keeps files equal to the newest enabled version: new versions, disabling, and none left", async () => {
    const v1 = payload("db-v1");
    const v2 = payload("db-v2");
    const v3 = payload("db-v3");
    const kv = payload("kv", (m) => JSON.stringify({ USER: "app", password: m, PORT: 5432 }));
    const db = await admin.createSecret({
      projectId,
      path: "/app",
      name: "db",
      firstVersion: { data: Buffer.from(v1) },
    });
    const dbId = db.secret?.id ?? "";
    await admin.createSecret({
      projectId,
      path: "/app",
      name: "kv",
      type: SecretType.KEY_VALUE,
      firstVersion: { data: Buffer.from(kv) },
    });
    const config = await configFile(
      "watch",
      [
        { path: "/app", name: "db", destination: "out/db.txt" },
        { path: "/app", name: "kv", destination: "out/kv.env", format: "dotenv" },
        {
          path: "/app",
          name: "kv",
          destination: "out/password",
          format: "json_field",
          field: "password",
          mode: "0440",
        },
      ],
      { health_listen: "127.0.0.1:0" },
    );
    const dir = path.dirname(config);
    const out = (f: string) => path.join(dir, "out", f);
    const agent = start(config);
    await agent.waitForLog(is("ready: every file rendered or found absent"));

    expect(await contentOf(out("db.txt"))).toBe(v1);
    expect((await stat(out("db.txt"))).mode & 0o777).toBe(0o400);
    const password = JSON.parse(kv).password as string;
    expect(await contentOf(out("kv.env"))).toBe(
      `USER="app"\npassword="${password}"\nPORT="5432"\n`,
    );
    expect(await contentOf(out("password"))).toBe(password);
    expect((await stat(out("password"))).mode & 0o777).toBe(0o440);

    const { address } = (await agent.waitForLog(is("health endpoints listening"))) as {
      address: string;
    };
    const ready = await fetch(`http://${address}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { connected: boolean; secrets: { revision: number }[] };
    expect(body.connected).toBe(true);
    expect(body.secrets.map((s) => s.revision)).toEqual([1, 1, 1]);
    expect((await fetch(`http://${address}/healthz`)).status).toBe(200);

    // New versions reach the file; the agent heard of every one.
    await admin.createSecretVersion({ secretId: dbId, data: Buffer.from(v2) });
    await admin.createSecretVersion({ secretId: dbId, data: Buffer.from(v3) });
    await until("v3 is in the file", async () => (await contentOf(out("db.txt"))) === v3);
    for (const revision of [2, 3]) {
      await agent.waitForLog(
        (l) =>
          l.msg === "event received" &&
          l.kind === "VERSION_CREATED" &&
          l.secretId === dbId &&
          l.revision === revision &&
          typeof l.cursor === "string",
      );
    }
    await agent.waitForLog(
      (l) => l.msg === "file written" && l.destination === out("db.txt") && l.revision === 3,
    );

    // Disabling the newest enabled version brings back the one before.
    await admin.disableSecretVersion({ secretId: dbId, revision: "3" });
    await until("v2 is back", async () => (await contentOf(out("db.txt"))) === v2);

    // No enabled version left: the file goes.
    await admin.disableSecretVersion({ secretId: dbId, revision: "2" });
    await admin.disableSecretVersion({ secretId: dbId, revision: "1" });
    await until("the file is removed", async () => (await contentOf(out("db.txt"))) === undefined);
    await agent.waitForLog((l) => l.msg === "file removed" && l.destination === out("db.txt"));

    // Enabled again: back it comes.
    await admin.enableSecretVersion({ secretId: dbId, revision: "2" });
    await until("v2 is back again", async () => (await contentOf(out("db.txt"))) === v2);

    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    await agent.waitForLog(is("stopped"));
    assertNoPayload(agent);
    const state = JSON.parse(await readFile(path.join(dir, "state.json"), "utf8"));
    expect(state.cursor).not.toBe("");
    expect(JSON.stringify(state)).not.toContain("MARKER");
  });

  it("--once renders and exits 0, and exits non-zero when a secret is missing", async () => {
    const data = payload("once");
    await admin.createSecret({
      projectId,
      path: "/init",
      name: "cfg",
      firstVersion: { data: Buffer.from(data) },
    });
    const good = await configFile("once-good", [
      { path: "/init", name: "cfg", destination: "cfg.txt" },
    ]);
    const ok = start(good, { once: true });
    expect(await ok.waitForExit()).toEqual({ code: 0, signal: null });
    expect(await contentOf(path.join(path.dirname(good), "cfg.txt"))).toBe(data);
    assertNoPayload(ok);

    const bad = await configFile("once-bad", [
      { path: "/init", name: "cfg", destination: "cfg.txt" },
      { path: "/init", name: "missing", destination: "missing.txt" },
    ]);
    const failed = start(bad, { once: true });
    const exit = await failed.waitForExit();
    expect(exit.code).not.toBe(0);
    expect(failed.logs().find(is("not rendered"))).toMatchObject({
      secret: "/init/missing",
      result: "absent",
    });
  });

  it("consumes a single-access version exactly once across kill -9 and a restart", async () => {
    const first = payload("otp-1");
    const second = payload("otp-2");
    const created = await admin.createSecret({
      projectId,
      path: "/app",
      name: "otp",
      ephemeralPolicy: { expiresOnceAccessed: true },
      firstVersion: { data: Buffer.from(first) },
    });
    const id = created.secret?.id ?? "";
    const config = await configFile("single", [
      { path: "/app", name: "otp", destination: "otp.txt" },
    ]);
    const file = path.join(path.dirname(config), "otp.txt");

    const before = start(config);
    await before.waitForLog((l) => l.msg === "single-access version consumed" && l.revision === 1);
    expect(await contentOf(file)).toBe(first);
    before.kill();
    expect((await before.exited).signal).toBe("SIGKILL");

    // Spent: nobody gets it again.
    const again = await refusal(admin.accessSecretVersion({ secretId: id, revision: "1" }));
    expect(again.code).toBe(Code.FailedPrecondition);

    const after = start(config);
    await after.waitForLog(is("ready: every file rendered or found absent"));
    // The file keeps the consumed payload; the restart neither consumed nor lost anything.
    expect(await contentOf(file)).toBe(first);
    expect(after.logs().filter(is("consuming single-access version"))).toEqual([]);
    expect(
      after.logs().filter((l) => String(l.msg).startsWith("single-access version lost")),
    ).toEqual([]);

    // A new single-access version is consumed once, by the restarted agent.
    await admin.createSecretVersion({ secretId: id, data: Buffer.from(second) });
    await after.waitForLog((l) => l.msg === "single-access version consumed" && l.revision === 2);
    expect(await contentOf(file)).toBe(second);
    const spent = await refusal(admin.accessSecretVersion({ secretId: id, revision: "2" }));
    expect(spent.code).toBe(Code.FailedPrecondition);
    const consumed = [...before.logs(), ...after.logs()].filter(
      is("single-access version consumed"),
    );
    expect(consumed.map((l) => l.revision)).toEqual([1, 2]);

    // Deleting the secret removes the file.
    await admin.deleteSecret({ secretId: id });
    await until("the file is removed", async () => (await contentOf(file)) === undefined);
    assertNoPayload(before);
    assertNoPayload(after);
  });

  it("after a crash between the intent and the consuming access, consumes the version, or reports it lost", async () => {
    const pendingData = payload("pending");
    const pending = await admin.createSecret({
      projectId,
      path: "/crash",
      name: "pending",
      ephemeralPolicy: { expiresOnceAccessed: true },
      firstVersion: { data: Buffer.from(pendingData) },
    });
    const gone = await admin.createSecret({
      projectId,
      path: "/crash",
      name: "gone",
      ephemeralPolicy: { expiresOnceAccessed: true },
      firstVersion: { data: Buffer.from(payload("gone")) },
    });
    const pendingId = pending.secret?.id ?? "";
    const goneId = gone.secret?.id ?? "";
    // The crashed run's access won for "gone": someone consumed it, and its file was never written.
    await admin.accessSecretVersion({ secretId: goneId, revision: "1" });

    const config = await configFile("crash", [
      { path: "/crash", name: "pending", destination: "pending.txt" },
      { path: "/crash", name: "gone", destination: "gone.txt" },
    ]);
    const dir = path.dirname(config);
    // The state a run leaves when killed right after recording its intents.
    await writeFile(
      path.join(dir, "state.json"),
      JSON.stringify({
        version: 1,
        cursor: "",
        files: {},
        singleAccess: {
          "/crash/pending@latest_enabled": { secretId: pendingId, intent: 1 },
          "/crash/gone@latest_enabled": { secretId: goneId, intent: 1 },
        },
      }),
    );
    const agent = start(config);
    await agent.waitForLog(is("ready: every file rendered or found absent"));
    await agent.waitForLog(
      (l) => l.msg === "single-access version consumed" && l.secretId === pendingId,
    );
    expect(await contentOf(path.join(dir, "pending.txt"))).toBe(pendingData);
    const lost = await agent.waitForLog((l) =>
      String(l.msg).startsWith("single-access version lost"),
    );
    expect(lost).toMatchObject({ level: 50, secretId: goneId, revision: 1 });
    expect(await contentOf(path.join(dir, "gone.txt"))).toBeUndefined();
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    const state = JSON.parse(await readFile(path.join(dir, "state.json"), "utf8"));
    expect(state.singleAccess).toEqual({
      "/crash/pending@latest_enabled": { secretId: pendingId, handled: 1 },
      "/crash/gone@latest_enabled": { secretId: goneId, handled: 1 },
    });
    // Never tried again: one consuming attempt each at most.
    expect(agent.logs().filter(is("consuming single-access version"))).toHaveLength(1);
    assertNoPayload(agent);
  });

  it("follows changes over gRPC and gRPC-Web too", async () => {
    const v1 = payload("proto-v1");
    const v2 = payload("proto-v2");
    const created = await admin.createSecret({
      projectId,
      path: "/proto",
      name: "s",
      firstVersion: { data: Buffer.from(v1) },
    });
    const id = created.secret?.id ?? "";
    const agents = [];
    for (const [protocol, url] of [
      ["grpc", server?.grpcUrl],
      ["grpc-web", server?.httpUrl],
    ] as const) {
      const config = await configFile(`proto-${protocol}`, [
        { path: "/proto", name: "s", destination: "s.txt" },
      ]);
      const text = JSON.parse(await readFile(config, "utf8"));
      await writeAgentConfig(config, { ...text, server: { url, protocol } });
      agents.push({ agent: start(config), file: path.join(path.dirname(config), "s.txt") });
    }
    for (const { agent, file } of agents) {
      await agent.waitForLog(is("ready: every file rendered or found absent"));
      expect(await contentOf(file)).toBe(v1);
    }
    await admin.createSecretVersion({ secretId: id, data: Buffer.from(v2) });
    for (const { agent, file } of agents) {
      await until("v2 is in the file", async () => (await contentOf(file)) === v2);
      assertNoPayload(agent);
    }
  });

  it("keeps its files while the server is down, reconnects and catches up with what changed meanwhile", async () => {
    const v1 = payload("ha-v1");
    const v2 = payload("ha-v2");
    const created = await admin.createSecret({
      projectId,
      path: "/ha",
      name: "db",
      firstVersion: { data: Buffer.from(v1) },
    });
    const id = created.secret?.id ?? "";
    const config = await configFile("ha", [{ path: "/ha", name: "db", destination: "db.txt" }], {
      health_listen: "127.0.0.1:0",
    });
    const file = path.join(path.dirname(config), "db.txt");
    const agent = start(config);
    await agent.waitForLog(is("ready: every file rendered or found absent"));
    const { address } = (await agent.waitForLog(is("health endpoints listening"))) as {
      address: string;
    };

    expect(await server?.stop()).toEqual({ code: 0, signal: null });
    await agent.waitForLog((l) => String(l.msg).startsWith("watch stream") && l.level === 40);
    await agent.waitForLog(is("reconnecting to the watch stream"));
    // Away for a while: the file stays, the agent says it is not connected.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await contentOf(file)).toBe(v1);
    const health = await fetch(`http://${address}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { connected: boolean }).connected).toBe(false);

    server = await startServer({ env: serverEnv });
    admin = createCofferClient({ url: server.httpUrl, token: server.token, timeoutMs: 30_000 });
    await admin.createSecretVersion({ secretId: id, data: Buffer.from(v2) });
    await until("v2 is in the file", async () => (await contentOf(file)) === v2, 60_000);
    expect(agent.logs().filter(is("watching")).length).toBeGreaterThanOrEqual(2);
    assertNoPayload(agent);
  });
});
