import { randomBytes } from "node:crypto";
import path from "node:path";
import { AdminService, Role, SecretService } from "@coffer/api";
import { createCofferTransport } from "@coffer/client";
import { generateToken } from "@coffer/server";
import { createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { ECHO_DATA } from "../baselines/echo-payload.ts";
import { onCleanup } from "./cleanup.ts";
import { Child, freePort, REPO_ROOT, sleep, TSX_LOADER } from "./processes.ts";

/**
 * The server's command, as `npm start` and an installed `coffer-server` run
 * it: its build (dist/, compiled by tsc), in plain Node. Its sources under
 * tsx are what a probe preloaded into the server needs (bench/watch.ts):
 * tsx's transform wraps every function it creates in a naming helper, a
 * per-call cost the shipped server does not pay.
 */
const SERVER_BIN = "packages/server/bin/coffer-server.js";
const SERVER_SOURCE = "packages/server/src/main.ts";

/** A fresh database `coffer_bench_<hex>` on the Postgres of `adminUrl`, dropped at cleanup. */
export async function createDatabase(adminUrl: string): Promise<string> {
  const name = `coffer_bench_${randomBytes(5).toString("hex")}`;
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`create database ${name}`);
  } finally {
    await sql.end();
  }
  onCleanup(`drop database ${name}`, async () => {
    const drop = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      await drop.unsafe(`drop database if exists ${name} with (force)`);
    } finally {
      await drop.end();
    }
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Settings shared by every server of one run (one database, one key ring, one admin token). */
export interface ServerSettings {
  databaseUrl: string;
  masterKeys: string;
  adminToken: string;
  dataDir: string;
}

export function serverSettings(databaseUrl: string, dataDir: string): ServerSettings {
  return {
    databaseUrl,
    masterKeys: `bench:${randomBytes(32).toString("base64")}`,
    adminToken: generateToken().value,
    dataDir,
  };
}

/** A running `coffer-server` process. */
export interface CofferProcess {
  child: Child;
  /** The Connect / gRPC-Web / HTTP/2 listener. */
  url: string;
  port: number;
  /** The gRPC (grpc-js) listener. */
  grpcUrl: string;
  grpcPort: number;
  /** `GET /metrics` (COFFER_METRICS_LISTEN), when started with `metrics`. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

/**
 * Starts a server process as `npm start` would (`node
 * packages/server/bin/coffer-server.js`, the build: run `npm run build`
 * first), with `nodeFlags` before it, on free ports, and waits until it
 * answers an admin call. With `preload`, the server runs from its sources
 * under tsx instead, so that the preloaded TypeScript probes load.
 */
export async function startCoffer(
  name: string,
  settings: ServerSettings,
  options: {
    /** Node flags before the entry point (`--cpu-prof`, `--expose-gc`). */
    nodeFlags?: string[];
    /** Modules imported after tsx's loader and before the server (bench/memory-probe.ts). */
    preload?: string[];
    /** More environment (not COFFER_* settings). */
    env?: Record<string, string>;
    logFile: string;
    /**
     * A checkout whose packages/server/src/main.ts is started instead of this
     * repository's (to measure "before" and "after" of a change in one run).
     */
    serverRoot?: string;
    /** Leave COFFER_DATABASE_URL unset: the embedded PGlite database in the data dir. */
    embedded?: boolean;
    /** Serve `GET /metrics` on a port of its own (read by bench/support/batch-metrics.ts). */
    metrics?: boolean;
  },
): Promise<CofferProcess> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const metricsPort = options.metrics ? await freePort() : undefined;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("COFFER_")) env[k] = v;
  Object.assign(env, {
    COFFER_DATABASE_URL: settings.databaseUrl,
    COFFER_MASTER_KEYS: settings.masterKeys,
    COFFER_BOOTSTRAP_TOKEN: settings.adminToken,
    COFFER_DATA_DIR: settings.dataDir,
    COFFER_RATE_LIMIT_RPS: "0",
    COFFER_LOG_LEVEL: "warn",
    COFFER_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    COFFER_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
    ...(metricsPort !== undefined && { COFFER_METRICS_LISTEN: `127.0.0.1:${metricsPort}` }),
    ...options.env,
  });
  if (options.embedded) delete env.COFFER_DATABASE_URL;
  const root = options.serverRoot ?? REPO_ROOT;
  const preload = options.preload ?? [];
  const child = new Child(
    name,
    [
      ...(options.nodeFlags ?? []),
      ...(preload.length === 0
        ? [path.join(root, SERVER_BIN)]
        : [
            "--import",
            TSX_LOADER,
            ...preload.flatMap((m) => ["--import", m]),
            path.join(root, SERVER_SOURCE),
          ]),
    ],
    { env, cwd: path.join(root, "packages/server"), logFile: options.logFile },
  );
  const stop = onCleanup(`stop ${name}`, async () => {
    await child.stop();
  });
  const url = `http://127.0.0.1:${httpPort}`;
  const admin = createClient(
    AdminService,
    createCofferTransport({ url, token: settings.adminToken, httpVersion: "1.1" }),
  );
  const deadline = performance.now() + 90_000;
  for (;;) {
    if (child.exit !== undefined) {
      await stop();
      throw new Error(`${name} exited before serving\n${child.tail()}`);
    }
    try {
      await admin.listProjects({ pageSize: 1 }, { timeoutMs: 2_000 });
      break;
    } catch {
      if (performance.now() > deadline) {
        await stop();
        throw new Error(`${name} did not serve within 90 s\n${child.tail()}`);
      }
      await sleep(200);
    }
  }
  return {
    child,
    url,
    port: httpPort,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    grpcPort,
    ...(metricsPort !== undefined && { metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` }),
    stop,
  };
}

/** A project, and a `secret_access` token on it (what a sidecar agent holds). */
export async function createProject(
  url: string,
  adminToken: string,
  name: string,
): Promise<{ projectId: string; accessToken: string }> {
  const admin = createClient(AdminService, createCofferTransport({ url, token: adminToken }));
  const { project } = await admin.createProject({ name });
  const projectId = project?.id as string;
  const { value } = await admin.createToken({
    name: `${name}-agents`,
    grants: [{ projectId, role: Role.SECRET_ACCESS, pathPrefix: "/" }],
  });
  return { projectId, accessToken: value };
}

/**
 * What the access probes read: a project with a `secret_access` token
 * (createProject) and one secret whose first version is the 1 KiB the
 * benchmarks serve.
 */
export async function createAccessTarget(
  url: string,
  adminToken: string,
  name: string,
): Promise<{ secretId: string; accessToken: string }> {
  const { projectId, accessToken } = await createProject(url, adminToken, name);
  const admin = createClient(SecretService, createCofferTransport({ url, token: adminToken }));
  const { secret } = await admin.createSecret({
    projectId,
    name,
    firstVersion: { data: ECHO_DATA },
  });
  return { secretId: secret?.id as string, accessToken };
}
