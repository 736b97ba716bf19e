import { type ChildProcess, spawn } from "node:child_process";
import { copyFile, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { type CofferClient, createCofferClient } from "@coffer/client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startAgentFixture, writeAgentConfig } from "../support/agent-process.ts";
import { REPO_ROOT, type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The single-file agent as an operator runs it beside an application:
 * dist/coffer-agent.mjs copied alone into a folder outside the repository
 * (no node_modules anywhere above it), run by a bare `node`, against a real
 * server: its help, --once, following a change, a server restart. The
 * bundle carries its own Headers (packages/agent/src/headers.ts), so these
 * are the tests of connect under it. Build first (`npm run build`, or
 * turbo's test task).
 */

const BUNDLE = path.join(REPO_ROOT, "packages/agent/dist/coffer-agent.mjs");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Processes still running, stopped after each test. */
const live = new Set<ChildProcess>();

/** `node coffer-agent.mjs args...` in `cwd`, with the runner's environment less COFFER_*, plus `env`. */
function startBundle(cwd: string, args: string[], env: Record<string, string> = {}) {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // NODE_OPTIONS and NODE_PATH could lend the bundle a loader or modules.
    if (!key.startsWith("COFFER_") && key !== "NODE_OPTIONS" && key !== "NODE_PATH") {
      childEnv[key] = value;
    }
  }
  Object.assign(childEnv, env);
  const child = spawn(process.execPath, ["coffer-agent.mjs", ...args], {
    cwd,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
  });
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const exited = new Promise<Run>((resolve) => {
    child.once("close", (code, signal) => {
      live.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, exited, output: () => `--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}` };
}

/** Runs the bundle to its end; kills it past `timeoutMs`. */
async function runBundle(cwd: string, args: string[], env: Record<string, string> = {}) {
  const run = startBundle(cwd, args, env);
  const timer = setTimeout(() => run.child.kill("SIGKILL"), 60_000);
  const result = await run.exited;
  clearTimeout(timer);
  return result;
}

const contentOf = (file: string) => readFile(file, "utf8").catch(() => undefined);

/** Polls until `file` holds `content`; fails at once when the agent exits, or after 60 s. */
async function untilFileHolds(
  agent: ReturnType<typeof startBundle>,
  file: string,
  content: string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await contentOf(file)) !== content) {
    if (agent.child.exitCode !== null || agent.child.signalCode !== null) {
      throw new Error(`the agent exited before ${file} held ${content}\n${agent.output()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${file} did not hold ${content} within 60 s\n${agent.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the single-file agent bundle", () => {
  let dir: string | undefined;
  let server: ServerProcess | undefined;
  let admin: CofferClient;
  let projectId = "";
  let token = "";
  /** Fixed ports, so that the server can be restarted where the agent expects it. */
  let serverEnv: Record<string, string> = {};

  beforeAll(async () => {
    await stat(BUNDLE).catch(() => {
      throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
    });
    dir = await makeTempDir("agent-bundle");
    // Only the bundle: no package.json, no node_modules, here or above.
    await copyFile(BUNDLE, path.join(dir, "coffer-agent.mjs"));
    for (let d = dir; ; d = path.dirname(d)) {
      await expect(stat(path.join(d, "node_modules"))).rejects.toThrow();
      if (path.dirname(d) === d) break;
    }
    expect(path.relative(REPO_ROOT, dir).startsWith("..")).toBe(true);

    ({ server, serverEnv, admin, projectId, token } = await startAgentFixture(dir, "agent-bundle"));
  });

  afterEach(() => {
    for (const child of live) child.kill("SIGKILL");
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await removeTempDir(dir);
  });

  it("prints its help with a bare node", async () => {
    const run = await runBundle(dir as string, ["--help"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^usage: coffer-agent --config agent\.yaml \[--once\]/);
  });

  it("renders every file once with --once, and exits 1 when a secret is missing", async () => {
    const work = dir as string;
    await admin.createSecret({
      projectId,
      path: "/once",
      name: "db",
      firstVersion: { data: Buffer.from("once-db-v1") },
    });
    await admin.createSecret({
      projectId,
      path: "/once",
      name: "api",
      firstVersion: { data: Buffer.from('{"key":"once-api-v1"}') },
    });
    await writeAgentConfig(path.join(work, "once.yaml"), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: "once-state.json",
      secrets: [
        { path: "/once", name: "db", destination: "once/db.txt" },
        {
          path: "/once",
          name: "api",
          destination: "once/api.key",
          format: "json_field",
          field: "key",
        },
      ],
    });
    const run = await runBundle(work, ["--config", "once.yaml", "--once"], {
      COFFER_TOKEN: token,
    });
    expect(run.code, `${run.stderr}\n${run.stdout}`).toBe(0);
    expect(await contentOf(path.join(work, "once/db.txt"))).toBe("once-db-v1");
    expect(await contentOf(path.join(work, "once/api.key"))).toBe("once-api-v1");
    expect((await stat(path.join(work, "once/db.txt"))).mode & 0o777).toBe(0o400);
    expect(run.stdout).not.toContain("once-db-v1");

    await writeAgentConfig(path.join(work, "missing.yaml"), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: "missing-state.json",
      secrets: [{ path: "/once", name: "nope", destination: "once/nope.txt" }],
    });
    const missing = await runBundle(work, ["--config", "missing.yaml", "--once"], {
      COFFER_TOKEN: token,
    });
    expect(missing.code, `${missing.stderr}\n${missing.stdout}`).toBe(1);
    expect(missing.stdout).toContain('"msg":"not rendered"');
  });

  it("follows a secret over its watch stream and stops on SIGTERM", async () => {
    const work = dir as string;
    const created = await admin.createSecret({
      projectId,
      path: "/follow",
      name: "db",
      firstVersion: { data: Buffer.from("follow-v1") },
    });
    await writeAgentConfig(path.join(work, "follow.yaml"), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: "follow-state.json",
      heartbeat_interval: "1s",
      secrets: [{ path: "/follow", name: "db", destination: "follow/db.txt" }],
    });
    const agent = startBundle(work, ["--config", "follow.yaml"], { COFFER_TOKEN: token });
    const file = path.join(work, "follow/db.txt");
    await untilFileHolds(agent, file, "follow-v1");
    await admin.createSecretVersion({
      secretId: created.secret?.id ?? "",
      data: Buffer.from("follow-v2"),
    });
    await untilFileHolds(agent, file, "follow-v2");
    agent.child.kill("SIGTERM");
    const run = await agent.exited;
    expect(run.code, agent.output()).toBe(0);
    expect(run.stderr).toBe("");
    const state = JSON.parse((await contentOf(path.join(work, "follow-state.json"))) ?? "{}");
    expect(state.files?.[file]?.revision).toBe(2);
  });

  it("keeps its file while the server restarts, reconnects and catches up", async () => {
    const work = dir as string;
    const created = await admin.createSecret({
      projectId,
      path: "/restart",
      name: "db",
      firstVersion: { data: Buffer.from("restart-v1") },
    });
    await writeAgentConfig(path.join(work, "restart.yaml"), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: "restart-state.json",
      heartbeat_interval: "1s",
      secrets: [{ path: "/restart", name: "db", destination: "restart/db.txt" }],
    });
    const agent = startBundle(work, ["--config", "restart.yaml"], { COFFER_TOKEN: token });
    const file = path.join(work, "restart/db.txt");
    await untilFileHolds(agent, file, "restart-v1");

    await server?.stop();
    // Away for a while: the agent keeps its file and retries.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await contentOf(file)).toBe("restart-v1");
    server = await startServer({ env: serverEnv });
    admin = createCofferClient({ url: server.httpUrl, token: server.token, timeoutMs: 30_000 });
    await admin.createSecretVersion({
      secretId: created.secret?.id ?? "",
      data: Buffer.from("restart-v2"),
    });
    await untilFileHolds(agent, file, "restart-v2");
    expect(agent.output()).toContain('"msg":"reconnecting to the watch stream"');
    agent.child.kill("SIGTERM");
    expect((await agent.exited).code, agent.output()).toBe(0);
  });
});
