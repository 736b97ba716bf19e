import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { CliError, ExitCode } from "./errors.ts";

/**
 * The profile file: named sets of connection settings, so that a token need
 * not live in the shell's environment. It holds tokens, so it is written
 * with mode 0600 and refused when anyone but its owner may read or write
 * it, the way ssh treats private keys.
 *
 * ```json
 * { "profiles": { "default": { "url": "http://127.0.0.1:8080", "token": "coffer_...", "project": "..." } } }
 * ```
 */

/** One profile. Every field is optional; flags and COFFER_* variables override them. */
export interface Profile {
  url?: string;
  token?: string;
  protocol?: string;
  project?: string;
  region?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** The keys of a profile, in the order they are shown. */
export const PROFILE_KEYS = [
  "url",
  "protocol",
  "token",
  "project",
  "region",
  "caFile",
  "certFile",
  "keyFile",
] as const satisfies readonly (keyof Profile)[];

export interface ProfileFile {
  profiles: Record<string, Profile>;
}

/** The profile used when neither --profile nor COFFER_PROFILE names one. */
export const DEFAULT_PROFILE = "default";

/**
 * Where the profile file is: `COFFER_CONFIG`, else
 * `$XDG_CONFIG_HOME/coffer/config.json`, else `~/.config/coffer/config.json`.
 */
export function profileFilePath(env: NodeJS.ProcessEnv, home: string): string {
  if (env.COFFER_CONFIG) return path.resolve(env.COFFER_CONFIG);
  const base = env.XDG_CONFIG_HOME ? env.XDG_CONFIG_HOME : path.join(home, ".config");
  return path.join(base, "coffer", "config.json");
}

/**
 * The mode problem of a profile file, or undefined when only its owner may
 * read and write it.
 */
export function modeProblem(mode: number): string | undefined {
  const loose = mode & 0o077;
  if (loose === 0) return undefined;
  const who = [loose & 0o070 ? "its group" : "", loose & 0o007 ? "other users" : ""]
    .filter(Boolean)
    .join(" and ");
  return `${who} can access it (mode ${(mode & 0o777).toString(8).padStart(4, "0")})`;
}

/**
 * Reads the profile file; undefined when there is none.
 * @throws CliError (exit 2) when others may access it or it is not valid.
 */
export async function readProfileFile(file: string): Promise<ProfileFile | undefined> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(
      `cannot read profile file ${file}: ${(err as Error).message}`,
      ExitCode.Usage,
    );
  }
  if (!info.isFile()) throw new CliError(`profile file ${file} is not a file`, ExitCode.Usage);
  const problem = modeProblem(info.mode);
  if (problem !== undefined) {
    throw new CliError(
      `refusing to read profile file ${file}: it holds tokens, and ${problem}`,
      ExitCode.Usage,
      `run: chmod 600 ${file}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new CliError(
      `profile file ${file} is not valid JSON: ${(err as Error).message}`,
      ExitCode.Usage,
      'fix it, or remove it and run "coffer login" again',
    );
  }
  return validate(value, file);
}

function validate(value: unknown, file: string): ProfileFile {
  const bad = (what: string) =>
    new CliError(
      `profile file ${file}: ${what}`,
      ExitCode.Usage,
      'expected {"profiles": {"default": {"url": "...", "token": "..."}}}',
    );
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad("must be a JSON object");
  }
  const profiles = (value as { profiles?: unknown }).profiles ?? {};
  if (typeof profiles !== "object" || profiles === null || Array.isArray(profiles)) {
    throw bad('"profiles" must be an object');
  }
  const out: Record<string, Profile> = {};
  for (const [name, profile] of Object.entries(profiles)) {
    if (typeof profile !== "object" || profile === null || Array.isArray(profile)) {
      throw bad(`profile "${name}" must be an object`);
    }
    const p: Profile = {};
    for (const [key, v] of Object.entries(profile)) {
      if (!(PROFILE_KEYS as readonly string[]).includes(key)) {
        throw bad(
          `profile "${name}" has an unknown key "${key}" (known: ${PROFILE_KEYS.join(", ")})`,
        );
      }
      if (typeof v !== "string") throw bad(`profile "${name}": "${key}" must be a string`);
      p[key as keyof Profile] = v;
    }
    out[name] = p;
  }
  return { profiles: out };
}

/**
 * Writes the profile file atomically (a temporary file in the same folder,
 * fsync, rename), mode 0600, its folder created with mode 0700.
 */
export async function writeProfileFile(file: string, data: ProfileFile): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(data, null, 2)}\n`);
    // The umask may have taken bits away, never added them; make it exact.
    await handle.chmod(0o600);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** A token as shown by `coffer profile show`: enough to recognise it, never the value. */
export function maskToken(token: string): string {
  return token.length > 12 ? `${token.slice(0, 11)}... (hidden)` : "(hidden)";
}
