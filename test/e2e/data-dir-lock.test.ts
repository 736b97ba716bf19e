import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { AdminService, createCofferTransport } from "@coffer/client";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  newToken,
  runUntilExit,
  SERVER_MAIN,
  type ServerProcess,
  serverEnv,
  startServer,
} from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * One process per embedded database folder: PGlite takes no lock of its
 * own, and a second server on the same folder once lost every write the
 * first had acknowledged. The folder is locked with flock(2), which the
 * kernel drops however the holder ends: a second opener (server or
 * rotate-keys) is refused at once, naming the folder and the holder's pid,
 * and a kill -9 of the holder leaves nothing stuck.
 */
describe("the embedded database folder is locked", () => {
  let dataDir: string | undefined;
  let holder: ServerProcess | undefined;
  let next: ServerProcess | undefined;
  const token = newToken();
  const env = () => ({ COFFER_DATA_DIR: dataDir, COFFER_BOOTSTRAP_TOKEN: token });
  const folder = () => path.join(dataDir ?? "", "regions", "local");
  const admin = (server: ServerProcess) =>
    createClient(
      AdminService,
      createCofferTransport({ url: server.httpUrl, token, timeoutMs: 30_000 }),
    );

  beforeAll(async () => {
    dataDir = await makeTempDir("data-dir-lock");
    holder = await startServer({ env: env() });
  });

  afterAll(async () => {
    holder?.kill();
    next?.kill();
    await Promise.all([holder?.exited, next?.exited]);
    await removeTempDir(dataDir);
  });

  it("refuses a second server at once, naming the folder and the holder's pid", async () => {
    if (holder === undefined) throw new Error("no server");
    await admin(holder).createProject({ name: "acknowledged-before" });

    const second = await runUntilExit({ env: env() });
    expect(second.served).toBe(false);
    expect(second.exit.code).toBe(2);
    expect(second.stderr).toContain(
      `coffer-server: cannot start: the embedded database folder ${folder()} is in use by another process (pid ${holder.pid}`,
    );
    // An operator's error: one line, no stack trace.
    expect(second.stderr).not.toMatch(/\n\s+at /);
    // Refused before opening anything: well under a normal start.
    expect(second.durationMs).toBeLessThan(20_000);
    // The holder still serves, and what it acknowledged is there.
    const { projects } = await admin(holder).listProjects({});
    expect(projects.map((p) => p.name)).toContain("acknowledged-before");
  });

  it("refuses rotate-keys while a server holds the folder, changing nothing", async () => {
    if (holder === undefined || dataDir === undefined) throw new Error("no server");
    const keyFile = path.join(dataDir, "master-keys.json");
    const before = await readFile(keyFile, "utf8");
    const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ["--import", "tsx", SERVER_MAIN, "rotate-keys"],
        { env: serverEnv({ COFFER_DATA_DIR: dataDir }), timeout: 60_000 },
        (error, _stdout, stderr) =>
          resolve({ code: error === null ? 0 : Number(error.code ?? -1), stderr }),
      );
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `coffer-server rotate-keys: the embedded database folder ${folder()} is in use by another process (pid ${holder.pid}`,
    );
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await readFile(keyFile, "utf8")).toBe(before);
  });

  it("after a kill -9 of the holder, the next start succeeds and finds its writes", async () => {
    if (holder === undefined) throw new Error("no server");
    // The server's process alone, not its group: the lock must not depend on
    // anything else being killed with it.
    process.kill(holder.pid, "SIGKILL");
    await holder.exited;

    next = await startServer({ env: env() });
    const { projects } = await admin(next).listProjects({});
    expect(projects.map((p) => p.name)).toContain("acknowledged-before");
    // The new holder is named now.
    const again = await runUntilExit({ env: env() });
    expect(again.exit.code).toBe(2);
    expect(again.stderr).toContain(`is in use by another process (pid ${next.pid}`);
  });
});
