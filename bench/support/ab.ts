import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { onCleanup } from "./cleanup.ts";
import {
  type CofferProcess,
  createDatabase,
  type ServerSettings,
  serverSettings,
  startCoffer,
} from "./coffer.ts";

/**
 * What the A/B probes (bench/probes/ab-*.ts) share: the two servers they
 * compare, each a checkout's build on a fresh Postgres database and a
 * folder of its own, with `FLAGS_<i>` as node flags and `ENV_<i>` as more
 * environment (`NAME=value`, split on spaces).
 */

/** `NAME=value` pairs of the variable `name`, split on spaces. */
function envOf(name: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (process.env[name] ?? "").split(" ").filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`${name}: "${pair}" is not NAME=value`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** The `i`th root's server (removed at cleanup), `env` under its `ENV_<i>`. */
export async function startAbServer(
  i: number,
  root: string,
  env: Record<string, string> = {},
): Promise<{ dir: string; server: CofferProcess; settings: ServerSettings }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "coffer-ab-"));
  onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const settings = serverSettings(
    await createDatabase("postgres://postgres@127.0.0.1:5432/test"),
    path.join(dir, "data"),
  );
  const server = await startCoffer(`ab-${i}`, settings, {
    logFile: path.join(dir, "server.log"),
    serverRoot: root,
    nodeFlags: (process.env[`FLAGS_${i}`] ?? "").split(" ").filter(Boolean),
    env: { ...env, ...envOf(`ENV_${i}`) },
  });
  return { dir, server, settings };
}
