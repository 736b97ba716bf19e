import { writeFile } from "node:fs/promises";
import path from "node:path";
import {
  AdminService,
  type CofferClient,
  createCofferClient,
  createCofferTransport,
  Role,
} from "@coffer/client";
import { createClient } from "@connectrpc/connect";
import { freePort } from "./ports.ts";
import { type ServerProcess, startServer } from "./server-process.ts";
import { type LogLine, REPO_ROOT, TsxProcess } from "./tsx-process.ts";

/** The agent's entry point, the file `coffer-agent` runs. */
export const AGENT_MAIN = path.join(REPO_ROOT, "packages/agent/src/main.ts");

/** A JSON log line of the agent. */
export type AgentLog = LogLine;

/** A `coffer-agent` child process (see {@link TsxProcess}). */
export class AgentProcess extends TsxProcess {
  constructor(args: string[], env: NodeJS.ProcessEnv, cwd: string) {
    super("coffer-agent", AGENT_MAIN, args, env, cwd);
  }

  /** Stops the agent (SIGTERM, SIGKILL past `timeoutMs`). */
  override stop(timeoutMs = 15_000) {
    return super.stop(timeoutMs);
  }
}

/** Options of {@link spawnAgent}. */
export interface AgentOptions {
  /** The config file (see {@link writeAgentConfig}). */
  config: string;
  once?: boolean;
  /** The token, passed as COFFER_TOKEN. */
  token?: string;
  /** More environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/**
 * Spawns `coffer-agent --config <file> [--once]` with the runner's
 * environment less every COFFER_* variable, plus COFFER_TOKEN. Stop it in
 * afterAll/afterEach.
 */
export function spawnAgent(options: AgentOptions): AgentProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("COFFER_")) env[key] = value;
  }
  if (options.token !== undefined) env.COFFER_TOKEN = options.token;
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const args = ["--config", options.config, ...(options.once ? ["--once"] : [])];
  return new AgentProcess(args, env, options.cwd ?? path.dirname(options.config));
}

/**
 * Writes an agent config. JSON is YAML, so the object is written as JSON;
 * keys are the config's own (snake_case).
 */
export async function writeAgentConfig(
  file: string,
  config: Record<string, unknown>,
): Promise<string> {
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** What an agent test runs against: a server on fixed ports, a project and a sidecar's token. */
export interface AgentFixture {
  server: ServerProcess;
  /** The server's settings (fixed ports, its bootstrap token), to restart it where the agents expect it. */
  serverEnv: Record<string, string>;
  /** A client with the admin token, to write secrets. */
  admin: CofferClient;
  projectId: string;
  /** A `secret_access` token on the project: what the agent holds. */
  token: string;
}

/** Starts a server with its data in `dir`/server, and makes a project `name` and an agent's token on it. */
export async function startAgentFixture(dir: string, name: string): Promise<AgentFixture> {
  const serverEnv: Record<string, string> = {
    COFFER_DATA_DIR: path.join(dir, "server"),
    COFFER_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
    COFFER_GRPC_LISTEN: `127.0.0.1:${await freePort()}`,
  };
  const server = await startServer({ env: serverEnv });
  serverEnv.COFFER_BOOTSTRAP_TOKEN = server.token;
  const options = { url: server.httpUrl, token: server.token, timeoutMs: 30_000 };
  const adminApi = createClient(AdminService, createCofferTransport(options));
  const projectId = (await adminApi.createProject({ name })).project?.id ?? "";
  const { value: token } = await adminApi.createToken({
    name,
    grants: [{ projectId, role: Role.SECRET_ACCESS, pathPrefix: "/" }],
  });
  return { server, serverEnv, admin: createCofferClient(options), projectId, token };
}
