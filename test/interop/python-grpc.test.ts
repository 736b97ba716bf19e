import { spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createCofferClient } from "@coffer/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, PROTO_DIR, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * A Python client generated from proto/ by Debian's protoc and
 * grpc_python_plugin, on Debian's python3-grpcio (gRPC's C core) and
 * python3-protobuf, against the gRPC port of a real server process.
 * .ci/run installs the four packages; under CI=true a missing one fails the
 * test, elsewhere it skips it and says which.
 */

const SCRIPT = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "python/coffer_roundtrip.py",
);

/**
 * Debian's python3, not the first python3 on PATH: python3-grpcio and
 * python3-protobuf install for /usr/bin/python3 only, and a developer's PATH
 * (or CI's) may start with pyenv or a virtualenv that lacks them.
 * COFFER_TEST_PYTHON overrides it.
 */
const PYTHON =
  process.env.COFFER_TEST_PYTHON ??
  (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

function commandPath(name: string): string | undefined {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** What this test needs and this machine lacks, each with the package that brings it. */
function missingTools(): string[] {
  const missing: string[] = [];
  if (commandPath("protoc") === undefined) missing.push("protoc (protobuf-compiler)");
  if (commandPath("grpc_python_plugin") === undefined) {
    missing.push("grpc_python_plugin (protobuf-compiler-grpc)");
  }
  const imports = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { encoding: "utf8" });
  if (imports.status !== 0) {
    missing.push(`grpc and google.protobuf for ${PYTHON} (python3-grpcio, python3-protobuf)`);
  }
  return missing;
}

const missing = missingTools();
const ci = process.env.CI === "true";
const skip = missing.length > 0 && !ci;
if (skip) {
  console.warn(
    `Skipping the Python gRPC interop test: missing ${missing.join("; ")}. ` +
      "Install them with: apt-get install protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf",
  );
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 90_000,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".proto"))
    .map((f) => path.join(dir, f));
}

describe(
  skip
    ? `Python grpcio client from protoc stubs (skipped: missing ${missing.join("; ")})`
    : "Python grpcio client from protoc stubs",
  runUnless(skip ? `missing ${missing.join("; ")}` : undefined),
  () => {
    let dataDir: string | undefined;
    let stubsDir: string | undefined;
    let server: ServerProcess | undefined;

    /** Runs the Python client with these settings over the defaults. */
    const client = (env: Record<string, string>) => {
      if (server === undefined || stubsDir === undefined) {
        throw new Error("not set up: see the first test");
      }
      const pythonEnv: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: stubsDir };
      delete pythonEnv.PYTHONHOME;
      return run(PYTHON, [SCRIPT], {
        ...pythonEnv,
        COFFER_GRPC_ADDRESS: server.grpcAddress,
        COFFER_TOKEN: server.token,
        ...env,
      });
    };

    beforeAll(async () => {
      // Under CI=true, the first test fails and says what is missing.
      if (missing.length > 0) return;
      dataDir = await makeTempDir("python");
      stubsDir = await makeTempDir("python-stubs");
      // Every Coffer .proto, so that a file protoc rejects fails here;
      // google/protobuf/*.proto come from protoc's own include folder.
      const generated = await run(
        "protoc",
        [
          `-I${PROTO_DIR}`,
          `--python_out=${stubsDir}`,
          `--grpc_out=${stubsDir}`,
          `--plugin=protoc-gen-grpc=${commandPath("grpc_python_plugin")}`,
          ...protoFiles(path.join(PROTO_DIR, "coffer")),
        ],
        process.env,
      );
      if (generated.code !== 0) {
        throw new Error(`protoc exited with ${generated.code}:\n${generated.stderr}`);
      }
      server = await startServer({ env: { COFFER_DATA_DIR: dataDir } });
    });

    afterAll(async () => {
      const exit = await server?.stop();
      await removeTempDir(dataDir);
      await removeTempDir(stubsDir);
      if (exit) expect(exit).toEqual({ code: 0, signal: null });
    });

    it("finds protoc, grpc_python_plugin, and grpcio and protobuf for Python", () => {
      expect(
        missing,
        "missing tools; .ci/run installs protobuf-compiler, protobuf-compiler-grpc, python3-grpcio and python3-protobuf with apt-get",
      ).toEqual([]);
    });

    it("creates a secret, watches a version arrive, and reads both versions back", async () => {
      if (server === undefined) throw new Error("no server");
      const projectId = await server.createProject();
      // Non-ASCII text in both, so that a client that re-encoded the bytes
      // would be caught.
      const first = Buffer.from(
        `{"user": "app", "password": "pr\u00e9mi\u00e8re-${randomBytes(6).toString("hex")}"}`,
      );
      const second = Buffer.from(
        `{"user": "app", "password": "\u{1F511}-${randomBytes(6).toString("hex")}"}`,
      );
      const result = await client({
        COFFER_PROJECT_ID: projectId,
        COFFER_PAYLOAD_1: first.toString("base64"),
        COFFER_PAYLOAD_2: second.toString("base64"),
      });
      expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(0);
      const out = JSON.parse(result.stdout) as {
        secret: Record<string, unknown>;
        added_revision: number;
        watch: { start: Record<string, unknown>; event: Record<string, unknown> };
        access: Record<string, { revision: number; data: string; crc32_matches: boolean }>;
        unknown_secret: string;
      };
      const secretId = String(out.secret.id);
      expect(out.secret).toMatchObject({
        path: "/interop/python",
        name: "db",
        type: "SECRET_TYPE_KEY_VALUE",
        first_revision: 1,
      });
      expect(out.added_revision).toBe(2);

      expect(out.watch.start.kind).toBe("WATCH_EVENT_KIND_HEARTBEAT");
      expect(out.watch.start.cursor).toMatch(/\S/);
      expect(out.watch.event).toMatchObject({
        kind: "WATCH_EVENT_KIND_VERSION_CREATED",
        secret_id: secretId,
        path: "/interop/python",
        name: "db",
        revision: 2,
        version_status: "VERSION_STATUS_ENABLED",
      });
      expect(out.watch.event.cursor).not.toBe(out.watch.start.cursor);

      expect(out.access.latest_enabled).toEqual({
        revision: 2,
        data: second.toString("base64"),
        crc32_matches: true,
      });
      expect(out.access["1"]).toEqual({
        revision: 1,
        data: first.toString("base64"),
        crc32_matches: true,
      });
      expect(out.unknown_secret).toBe("NOT_FOUND");

      // What Python wrote, read by another implementation over another
      // protocol (@coffer/client, Connect): the same bytes.
      const coffer = createCofferClient({
        url: server.httpUrl,
        token: server.token,
        timeoutMs: 30_000,
      });
      const read = await coffer.accessSecretVersion({ secretId, revision: "2" });
      expect(Buffer.from(read.data).equals(second)).toBe(true);
    });

    it("exits 2 and prints the gRPC code when the token is refused", async () => {
      const result = await client({
        // Well-formed, and unknown to the server.
        COFFER_TOKEN: newToken(),
        COFFER_PROJECT_ID: randomUUID(),
        COFFER_PAYLOAD_1: Buffer.from('{"a": "1"}').toString("base64"),
        COFFER_PAYLOAD_2: Buffer.from('{"a": "2"}').toString("base64"),
      });
      expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(2);
      const out = JSON.parse(result.stdout) as { error: { code: string; details: string } };
      expect(out.error.code).toBe("UNAUTHENTICATED");
    });
  },
);
