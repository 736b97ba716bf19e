import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * exitOnCrash in a process of its own: a query error nobody handled (as a
 * bug in a batch's error path would leave) must end the process with 1, say
 * so on stdout (the log) and stderr, and show neither its parameters
 * (ciphertexts, token hashes) nor anything node's default printing would.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const MARKER = "not-for-logs-4f1c";

function crashWith(
  throwing: string,
  install = 'exitOnCrash(createLogger("info"));',
): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `
    const { DrizzleQueryError } = await import("drizzle-orm");
    const { createLogger } = await import(${JSON.stringify(path.join(here, "../logger.ts"))});
    const { exitOnCrash } = await import(${JSON.stringify(path.join(here, "crash.ts"))});
    ${install}
    const queryError = new DrizzleQueryError(
      "insert into t values ($1, $2)",
      ["${MARKER}", Buffer.from("${MARKER}")],
      Object.assign(new Error("connection closed"), { code: "CONNECTION_CLOSED" }),
    );
    ${throwing}
    setTimeout(() => process.exit(0), 2000);
  `;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: here, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe("exitOnCrash", () => {
  it.each([
    ["unhandled rejection", "void Promise.reject(queryError);"],
    ["uncaught exception", "setImmediate(() => { throw queryError; });"],
  ])("exits 1 on an %s, logging it without the query's parameters", async (what, throwing) => {
    const run = await crashWith(throwing);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`coffer-server: ${what}: Error: failed query: insert into t`);
    const fatal = run.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } })
      .find((line) => line.level === 60);
    expect(fatal?.msg).toBe(`${what}: exiting`);
    expect(fatal?.err?.message).toBe(
      "failed query: insert into t values ($1, $2): connection closed",
    );
    expect(run.stdout + run.stderr).toContain("connection closed");
    expect(run.stdout + run.stderr).not.toContain(MARKER);
    expect(run.stdout + run.stderr).not.toContain(Buffer.from(MARKER).join(","));
  });

  it("without a logger (rotate-keys), exits 1 with the message on stderr only, without the parameters", async () => {
    const run = await crashWith("void Promise.reject(queryError);", "exitOnCrash();");
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      "coffer-server: unhandled rejection: Error: failed query: insert into t",
    );
    expect(run.stdout).toBe("");
    expect(run.stderr).not.toContain(MARKER);
    expect(run.stderr).not.toContain(Buffer.from(MARKER).join(","));
  });
});
