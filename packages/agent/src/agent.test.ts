import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AuthService, exchangingProvider } from "@coffer/client";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AgentHandle, runOnce, startAgent } from "./agent.ts";
import type { AgentConfig, SecretFileConfig } from "./config.ts";
import { FakeCoffer, memoryLogger } from "./fake-coffer.ts";

let dir = "";
const agents: AgentHandle[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-agent-run-"));
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await rm(dir, { recursive: true, force: true });
});

const at = (name: string) => path.join(dir, name);
const read = (name: string) => readFile(at(name), "utf8").catch(() => undefined);

function file(
  name: string,
  secret: string,
  extra: Partial<SecretFileConfig> = {},
): SecretFileConfig {
  return {
    ref: { kind: "location", path: "/", name: secret },
    revision: "latest_enabled",
    destination: at(name),
    mode: 0o400,
    format: { kind: "raw" },
    ...extra,
  };
}

function config(
  fake: FakeCoffer,
  secrets: SecretFileConfig[],
  extra: Partial<AgentConfig> = {},
): AgentConfig {
  return {
    server: { url: "http://fake", protocol: "connect", token: "t", callTimeoutMs: 1000 },
    projectId: fake.projectId,
    region: "",
    stateFile: at("state.json"),
    heartbeatIntervalMs: 60_000,
    logLevel: "debug",
    secrets,
    ...extra,
  };
}

async function start(fake: FakeCoffer, cfg: AgentConfig) {
  const log = memoryLogger();
  const agent = await startAgent(cfg, {
    client: fake.client,
    logger: log.logger,
    backoff: { initialDelayMs: 5, maxDelayMs: 50 },
  });
  agents.push(agent);
  return { agent, log };
}

/** Polls `check` until it holds (or fails the test after `ms`). */
async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const savedCursor = async () =>
  JSON.parse((await readFile(at("state.json"), "utf8").catch(() => "{}")) || "{}").cursor as
    | string
    | undefined;

describe("startAgent", () => {
  it("renders every file, becomes ready, then follows events and saves the cursor after them", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "PAYLOAD-a1" });
    fake.createSecret("/", "b", { data: '{"K":"PAYLOAD-v"}' });
    const { agent, log } = await start(
      fake,
      config(fake, [
        file("a", "a"),
        file("b.env", "b", { format: { kind: "dotenv" } }),
        file("c", "c"),
      ]),
    );
    await agent.ready;
    expect(await read("a")).toBe("PAYLOAD-a1");
    expect(await read("b.env")).toBe('K="PAYLOAD-v"\n');
    expect(await read("c")).toBeUndefined();
    expect(agent.status()).toMatchObject({
      ready: true,
      connected: true,
      secrets: [
        { destination: at("a"), secret: "/a", secretId: id, revision: 1, state: "current" },
        { destination: at("b.env"), revision: 1, state: "current" },
        { destination: at("c"), secretId: null, revision: null, state: "absent" },
      ],
    });
    await until(async () => (await savedCursor()) === String(fake.head));

    fake.addVersion(id, "PAYLOAD-a2");
    await until(async () => (await read("a")) === "PAYLOAD-a2");
    await until(async () => (await savedCursor()) === String(fake.head));
    expect(
      log.lines.find((l) => l.msg === "event received" && l.kind === "VERSION_CREATED"),
    ).toMatchObject({ secretId: id, path: "/", name: "a", revision: 2, cursor: String(fake.head) });
    expect(
      log.lines.filter((l) => l.msg === "file written" && l.destination === at("a")),
    ).toHaveLength(2);

    const c = fake.createSecret("/", "c", { data: "PAYLOAD-c1" });
    await until(async () => (await read("c")) === "PAYLOAD-c1");
    fake.setEnabled(c, 1, false);
    await until(async () => (await read("c")) === undefined);
    // Logged once the removal is durable (after the folder's fsync).
    await until(() => log.lines.some((l) => l.msg === "file removed"));
    expect(log.lines.find((l) => l.msg === "file removed")).toMatchObject({ destination: at("c") });
    expect(log.text()).not.toContain("PAYLOAD");
  });

  it("coalesces a burst of events for one secret into a few accesses", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v0" });
    const { agent } = await start(fake, config(fake, [file("a", "a")]));
    await agent.ready;
    const before = fake.accesses.length;
    for (let i = 1; i <= 50; i++) fake.addVersion(id, `v${i}`);
    await until(async () => (await read("a")) === "v50");
    await until(async () => (await savedCursor()) === String(fake.head));
    expect(fake.accesses.length - before).toBeLessThanOrEqual(4);
  });

  it("follows a secret moved away from its location and one moved into it", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "first" });
    const { agent } = await start(fake, config(fake, [file("a", "a")]));
    await agent.ready;
    fake.move(id, "/", "elsewhere");
    await until(async () => (await read("a")) === undefined);
    const other = fake.createSecret("/", "b", { data: "second" });
    fake.move(other, "/", "a");
    await until(async () => (await read("a")) === "second");
  });

  it("keeps its files while the server is away, reconnects from its cursor and catches up", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "before" });
    const { agent, log } = await start(fake, config(fake, [file("a", "a")]));
    await agent.ready;
    fake.watchDown = new ConnectError("down", Code.Unavailable);
    fake.fault = () => new ConnectError("down", Code.Unavailable);
    fake.dropStreams();
    await until(() => !agent.status().connected);
    await until(() => fake.watchCalls.length >= 3);
    expect(await read("a")).toBe("before");
    // Changed while the agent could not see it.
    fake.addVersion(id, "after");
    const cursorBefore = fake.watchCalls[0];
    fake.watchDown = undefined;
    fake.fault = undefined;
    await until(async () => (await read("a")) === "after");
    expect(agent.status().connected).toBe(true);
    expect(fake.watchCalls.at(-1)).not.toBe("");
    expect(fake.watchCalls.at(-1)).not.toBe(cursorBefore);
    expect(log.lines.some((l) => l.msg === "watch stream failed; reconnecting")).toBe(true);
    const delays = log.lines
      .filter((l) => l.msg === "reconnecting to the watch stream")
      .map((l) => l.delayMs as number);
    expect(Math.max(...delays)).toBeLessThanOrEqual(50);
  });

  it("keeps reconnecting after an error the client's watch gives up on, and catches up", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "before" });
    const { agent, log } = await start(fake, config(fake, [file("a", "a")]));
    await agent.ready;
    // A token revoked under a running agent: the client's watch throws
    // UNAUTHENTICATED; the agent, unattended, must keep trying.
    const revoked = new ConnectError("token revoked", Code.Unauthenticated);
    fake.watchDown = revoked;
    fake.dropStreams(revoked);
    await until(() => !agent.status().connected);
    const callsWhenDown = fake.watchCalls.length;
    await until(() => fake.watchCalls.length >= callsWhenDown + 2);
    fake.addVersion(id, "after");
    fake.watchDown = undefined;
    await until(async () => (await read("a")) === "after");
    expect(agent.status().connected).toBe(true);
    expect(
      log.lines.some(
        (l) => l.msg === "watch stream failed; reconnecting" && l.code === "Unauthenticated",
      ),
    ).toBe(true);
  });

  it("reconnects when the stream stays silent for three heartbeat intervals", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "x" });
    const { agent, log } = await start(
      fake,
      config(fake, [file("a", "a")], { heartbeatIntervalMs: 50 }),
    );
    await agent.ready;
    // The fake sends no heartbeats after the first message.
    await until(() => fake.watchCalls.length >= 2);
    expect(
      log.lines.some(
        (l) => l.msg === "watch stream silent for three heartbeat intervals; reconnecting",
      ),
    ).toBe(true);
  });

  it("saves a cursor moved by events for nothing it writes later, and at the latest when it stops", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "x" });
    const { agent } = await start(fake, config(fake, [file("a", "a")]));
    await agent.ready;
    await until(async () => (await savedCursor()) === String(fake.head));
    const saved = await savedCursor();
    // Changes to a secret the agent does not write: nothing to do but move the cursor.
    const other = fake.createSecret("/", "other", { data: "o1" });
    for (let i = 2; i <= 5; i++) fake.addVersion(other, `o${i}`);
    await until(() => agent.status().cursor === String(fake.head));
    await new Promise((r) => setTimeout(r, 100));
    expect(await savedCursor()).toBe(saved);
    await agent.stop();
    expect(await savedCursor()).toBe(String(fake.head));
  });

  it("reconciles everything on RESYNC", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "x" });
    const { agent } = await start(fake, config(fake, [file("a", "a")]));
    await agent.ready;
    const before = fake.accesses.length;
    fake.resync();
    await until(() => fake.accesses.length > before);
  });

  it("resumes after a restart from the saved cursor, and gets RESYNC when it is too old", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "one" });
    const first = await start(fake, config(fake, [file("a", "a")]));
    await first.agent.ready;
    await until(async () => (await savedCursor()) === String(fake.head));
    await first.agent.stop();
    const saved = await savedCursor();

    fake.addVersion(id, "two");
    const second = await start(fake, config(fake, [file("a", "a")]));
    await second.agent.ready;
    expect(fake.watchCalls.at(-1)).toBe(saved);
    await until(async () => (await read("a")) === "two");
    await second.agent.stop();

    fake.addVersion(id, "three");
    fake.retainedAfter = fake.head;
    const third = await start(fake, config(fake, [file("a", "a")]));
    await until(async () => (await read("a")) === "three");
    await until(() => third.log.lines.some((l) => l.kind === "RESYNC"));
  });

  it("consumes a single-access version once across a restart, and never again", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "code-1" });
    const first = await start(fake, config(fake, [file("otp", "otp")]));
    await first.agent.ready;
    expect(await read("otp")).toBe("code-1");
    await first.agent.stop();
    const second = await start(fake, config(fake, [file("otp", "otp")]));
    await second.agent.ready;
    expect(second.agent.status().secrets[0]).toMatchObject({
      state: "kept",
      revision: 1,
      singleAccess: true,
    });
    fake.addVersion(id, "code-2");
    await until(async () => (await read("otp")) === "code-2");
    expect(fake.consumingAccesses(id).map((a) => a.revision)).toEqual(["1", "2"]);
    // Deleting the secret removes the file.
    fake.deleteSecret(id);
    await until(async () => (await read("otp")) === undefined);
  });

  it("serves /healthz and /readyz with the status and no payload", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "PAYLOAD-x" });
    fake.watchDown = new ConnectError("not yet", Code.Unavailable);
    const { agent, log } = await start(
      fake,
      config(fake, [file("a", "a")], { healthListen: { host: "127.0.0.1", port: 0 } }),
    );
    const address = agent.healthAddress ?? "";
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(log.lines.find((l) => l.msg === "health endpoints listening")).toMatchObject({
      address,
    });
    const get = async (p: string) => {
      const res = await fetch(`http://${address}${p}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await get("/healthz")).status).toBe(200);
    const notReady = await get("/readyz");
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({
      ready: false,
      connected: false,
      secrets: [{ state: "pending" }],
    });
    fake.watchDown = undefined;
    await agent.ready;
    const ready = await get("/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      ready: true,
      connected: true,
      secrets: [{ revision: 1, state: "current" }],
    });
    expect(JSON.stringify(ready.body)).not.toContain("PAYLOAD");
    expect((await get("/nope")).status).toBe(404);
  });

  it("runs on_change once for a burst of changes", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v0" });
    const runs = at("runs");
    const { agent } = await start(
      fake,
      config(fake, [file("a", "a")], {
        onChange: {
          action: { kind: "command", argv: ["sh", "-c", `echo run >> "${runs}"`], timeoutMs: 5000 },
          debounceMs: 1000,
        },
      }),
    );
    await agent.ready;
    await until(async () => ((await read("runs")) ?? "").length > 0);
    for (let i = 1; i <= 10; i++) fake.addVersion(id, `v${i}`);
    await until(async () => (await read("a")) === "v10");
    await until(async () => ((await read("runs")) ?? "").split("\n").length === 3);
    await new Promise((r) => setTimeout(r, 500));
    expect(await read("runs")).toBe("run\nrun\n");
  });

  it("gives on_change commands the environment without the agent's credentials", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "v0" });
    const token = "cof_agent-token-value-7f3a9c";
    const planted = {
      COFFER_TOKEN: token,
      COFFER_TOKEN_FILE: "/run/secrets/coffer-token",
      COFFER_BOOTSTRAP_TOKEN: "cof_bootstrap",
      MY_AGENT_TOKEN: token,
      COPIED_TOKEN: `Bearer ${token}`,
      KEPT_SETTING: "kept",
    };
    const before = { ...process.env };
    Object.assign(process.env, planted);
    try {
      const out = at("child-env");
      const { agent } = await start(
        fake,
        config(fake, [file("a", "a")], {
          server: {
            url: "http://fake",
            protocol: "connect",
            token,
            tokenEnv: "MY_AGENT_TOKEN",
            callTimeoutMs: 1000,
          },
          onChange: {
            // A real child that prints the environment it was given.
            action: { kind: "command", argv: ["sh", "-c", `env > "${out}"`], timeoutMs: 5000 },
            debounceMs: 10,
          },
        }),
      );
      await agent.ready;
      await until(async () => ((await read("child-env")) ?? "").includes("KEPT_SETTING"));
      const env = (await read("child-env")) ?? "";
      const names = env.split("\n").map((l) => l.split("=")[0]);
      expect(names).toContain("KEPT_SETTING");
      expect(names).toContain("PATH");
      expect(names.filter((n) => n?.startsWith("COFFER_"))).toEqual([]);
      expect(names).not.toContain("MY_AGENT_TOKEN");
      expect(names).not.toContain("COPIED_TOKEN");
      expect(env).not.toContain(token);
    } finally {
      for (const name of Object.keys(planted)) {
        if (before[name] === undefined) delete process.env[name];
        else process.env[name] = before[name];
      }
    }
  });

  it("signals a process named by a pid file on change", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "v0" });
    let hups = 0;
    const onHup = () => {
      hups += 1;
    };
    process.on("SIGHUP", onHup);
    try {
      await writeFile(at("pid"), `${process.pid}\n`);
      const { agent, log } = await start(
        fake,
        config(fake, [
          file("a", "a", {
            onChange: {
              action: { kind: "signal", signal: "SIGHUP", pidFile: at("pid") },
              debounceMs: 10,
            },
          }),
        ]),
      );
      await agent.ready;
      await until(() => hups === 1);
      expect(log.lines.find((l) => l.msg === "on_change: signal sent")).toMatchObject({
        scope: at("a"),
        pid: process.pid,
        signal: "SIGHUP",
      });
    } finally {
      process.off("SIGHUP", onHup);
    }
  });
});

/** Looks like a JWT; must never reach a log. */
const JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmVk";

/**
 * A fake AuthService whose tokens live `lifeMs` and then expire at the fake
 * Coffer (their streams end with UNAUTHENTICATED, as the server ends them),
 * with a provider exchanging through it as `server.auth` would.
 */
function exchanges(fake: FakeCoffer, lifeMs: number) {
  const state = { issued: [] as string[], refuse: false };
  const transport = createRouterTransport(({ service }) => {
    service(AuthService, {
      exchangeToken() {
        if (state.refuse) {
          throw new ConnectError("this JWT is not accepted", Code.Unauthenticated);
        }
        const value = `coffer_exchanged_${state.issued.length + 1}`;
        state.issued.push(value);
        const now = Date.now();
        setTimeout(() => fake.expireToken(value), lifeMs).unref();
        return {
          value,
          token: {
            id: `id-${state.issued.length}`,
            createdAt: timestampFromMs(now),
            expiresAt: timestampFromMs(now + lifeMs),
          },
        };
      },
    });
  });
  const token = exchangingProvider({
    transport,
    jwt: () => JWT,
    jwtSource: "the JWT file /var/run/secrets/coffer/token",
  });
  return { state, token };
}

describe("startAgent with an exchanged token (server.auth)", () => {
  it("renews before expiry and moves its watch to a new stream: no event lost or repeated, no gap", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v1" });
    const { state, token } = exchanges(fake, 1_500);
    const log = memoryLogger();
    const agent = await startAgent(config(fake, [file("a", "a")]), {
      client: fake.clientWith(token),
      token,
      logger: log.logger,
      backoff: { initialDelayMs: 5, maxDelayMs: 50 },
    });
    agents.push(agent);
    await agent.ready;
    expect(await read("a")).toBe("v1");

    // While the token is renewed four times or more, the file is never
    // missing and the watch never down.
    let missing = 0;
    let down = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        if ((await read("a")) === undefined) missing += 1;
        if (!agent.status().connected || !agent.status().ready) down += 1;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const VERSIONS = 40;
    let slowest = 0;
    for (let i = 2; i <= VERSIONS; i++) {
      fake.addVersion(id, `v${i}`);
      const t0 = Date.now();
      await until(async () => (await read("a")) === `v${i}`, 1_000);
      slowest = Math.max(slowest, Date.now() - t0);
      await new Promise((r) => setTimeout(r, 100));
    }
    sampling = false;
    await sampler;

    expect(state.issued.length).toBeGreaterThanOrEqual(4);
    expect(missing).toBe(0);
    expect(down).toBe(0);
    expect(slowest).toBeLessThan(1_000);
    const moves = log.lines.filter(
      (l) => l.msg === "watch moved to a stream with the renewed token",
    );
    expect(moves.length).toBeGreaterThanOrEqual(3);
    // Never the server ending a stream under the agent: every switch came first.
    expect(log.lines.filter((l) => String(l.msg).includes("reconnecting"))).toEqual([]);
    // Each stream opened with a token of its own, each token renewed in time.
    expect(new Set(fake.watchTokens).size).toBe(fake.watchTokens.length);
    // Every event once; every revision written once.
    const events = log.lines.filter(
      (l) => l.msg === "event received" && l.kind === "VERSION_CREATED",
    );
    expect(events.map((l) => l.revision)).toEqual(
      Array.from({ length: VERSIONS - 1 }, (_, i) => i + 2),
    );
    const writes = log.lines
      .filter((l) => l.msg === "file written" && l.destination === at("a"))
      .map((l) => l.revision);
    expect(writes).toEqual(Array.from({ length: VERSIONS }, (_, i) => i + 1));
    expect(log.lines.filter((l) => l.msg === "Coffer token renewed").length).toBeGreaterThanOrEqual(
      3,
    );
    expect(log.text()).not.toContain("coffer_exchanged");
    expect(log.text()).not.toContain(JWT);
  });

  it("keeps retrying a refused renewal, says what to check, and catches up once the JWT is accepted", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v1" });
    const { state, token } = exchanges(fake, 600);
    const log = memoryLogger();
    const agent = await startAgent(config(fake, [file("a", "a")]), {
      client: fake.clientWith(token),
      token,
      logger: log.logger,
      backoff: { initialDelayMs: 20, maxDelayMs: 50 },
    });
    agents.push(agent);
    await agent.ready;
    state.refuse = true;
    await until(() => log.lines.some((l) => l.msg === "cannot renew the Coffer token; retrying"));
    // The token runs out: the stream ends, the file stays.
    await until(() => !agent.status().connected);
    fake.addVersion(id, "v2");
    expect(await read("a")).toBe("v1");
    const refusal = log.lines.find((l) => l.msg === "cannot renew the Coffer token; retrying");
    expect(String(refusal?.err)).toContain("the JWT file /var/run/secrets/coffer/token");
    expect(String(refusal?.err)).toContain("identity binding");
    state.refuse = false;
    await until(async () => (await read("a")) === "v2");
    expect(agent.status()).toMatchObject({ ready: true, connected: true });
    expect(log.text()).not.toContain("coffer_exchanged");
    expect(log.text()).not.toContain(JWT);
  });
});

describe("runOnce", () => {
  it("renders everything and says ok, or not ok when a secret is missing", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "x" });
    const log = memoryLogger();
    const ok = await runOnce(config(fake, [file("a", "a")]), {
      client: fake.client,
      logger: log.logger,
    });
    expect(ok.ok).toBe(true);
    expect(await read("a")).toBe("x");
    expect((await stat(at("state.json"))).isFile()).toBe(true);

    const missing = await runOnce(config(fake, [file("a", "a"), file("m", "missing")]), {
      client: fake.client,
      logger: log.logger,
    });
    expect(missing.ok).toBe(false);
    expect(log.lines.find((l) => l.msg === "not rendered")).toMatchObject({
      secret: "/missing",
      result: "absent",
    });
  });

  it("gives up after a few attempts when the server is unreachable", async () => {
    const fake = new FakeCoffer();
    fake.fault = () => new ConnectError("down", Code.Unavailable);
    const result = await runOnce(config(fake, [file("a", "a")]), {
      client: fake.client,
      logger: memoryLogger().logger,
      backoff: { initialDelayMs: 1, maxDelayMs: 2 },
    });
    expect(result.ok).toBe(false);
    expect(fake.accesses).toHaveLength(5);
    expect(result.secrets[0]).toMatchObject({ state: "failed", error: "Unavailable: down" });
  });
});
