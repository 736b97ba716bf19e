import type { CofferProtocol } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Runs } from "../args.ts";
import { checkUrl, connectWith, defaultUrl } from "../connection.ts";
import type { Context } from "../context.ts";
import { CliError, ExitCode, UsageError } from "../errors.ts";
import { formatDetails, formatTable } from "../output.ts";
import {
  DEFAULT_PROFILE,
  maskToken,
  PROFILE_KEYS,
  type Profile,
  profileFilePath,
  readProfileFile,
  writeProfileFile,
} from "../profile.ts";
import { describeError } from "../rpc-errors.ts";
import type { PROFILE, SETTING_OPTIONS } from "./profile.ts";

/** The profile keys as flags. */
const KEY_FLAGS: Record<(typeof PROFILE_KEYS)[number], string> = {
  url: "url",
  protocol: "protocol",
  token: "token",
  project: "project",
  region: "region",
  caFile: "ca-file",
  certFile: "cert-file",
  keyFile: "key-file",
};

type SettingValues = { [K in keyof typeof SETTING_OPTIONS]?: string };

/**
 * Sets (or, with undefined, removes) keys of one profile and writes the
 * file (mode 0600). Other profiles are kept as they are.
 */
export async function updateProfile(
  _ctx: Context,
  file: string,
  name: string,
  changes: Partial<Record<keyof Profile, string | undefined>>,
): Promise<Profile> {
  const data = (await readProfileFile(file)) ?? { profiles: {} };
  const profile: Profile = { ...(data.profiles[name] ?? {}) };
  for (const [key, value] of Object.entries(changes) as [keyof Profile, string | undefined][]) {
    if (value === undefined) delete profile[key];
    else profile[key] = value;
  }
  data.profiles[name] = profile;
  await writeProfileFile(file, data);
  return profile;
}

/** The settings flags given, as profile keys; `--token -` reads stdin. */
async function changesFrom(ctx: Context, values: SettingValues): Promise<Partial<Profile>> {
  const changes: Partial<Profile> = {};
  for (const key of PROFILE_KEYS) {
    const value = values[KEY_FLAGS[key] as keyof SettingValues];
    if (value === undefined) continue;
    if (value === "")
      throw new UsageError(`--${KEY_FLAGS[key]} needs a value (use --unset to remove a key)`);
    changes[key] = value;
  }
  if (changes.token === "-") changes.token = await readTokenFromStdin(ctx);
  if (changes.url !== undefined) checkUrl(changes.url);
  if (
    changes.protocol !== undefined &&
    !["connect", "grpc", "grpc-web"].includes(changes.protocol)
  ) {
    throw new UsageError(
      `--protocol must be connect, grpc or grpc-web (got "${changes.protocol}")`,
    );
  }
  return changes;
}

async function readTokenFromStdin(ctx: Context): Promise<string> {
  if (ctx.io.stdin.isTTY)
    throw new UsageError("--token -: pipe the token on stdin (e.g. < token.txt)");
  let text = "";
  for await (const chunk of ctx.io.stdin) text += chunk.toString();
  const token = text.trim();
  if (token === "") throw new UsageError("--token -: stdin was empty");
  return token;
}

/** What `coffer login` and the commands of `coffer profile` (profile.ts) do. */
export const run: Runs<typeof PROFILE> = {
  async login(ctx, { values }) {
    if (values.token === undefined) {
      throw new UsageError('--token is required ("--token -" reads it from stdin)');
    }
    const changes = await changesFrom(ctx, values);
    const file = profileFilePath(ctx.env, ctx.home);
    const name = values.profile ?? (ctx.env.COFFER_PROFILE || DEFAULT_PROFILE);
    const existing = (await readProfileFile(file))?.profiles[name] ?? {};
    const merged: Profile = { ...existing, ...changes };
    if (!values["no-verify"]) {
      // What is stored is what is checked: the profile's settings, not the environment's.
      const url = merged.url ?? defaultUrl(merged.protocol);
      ctx.errorContext.url = url;
      const conn = await connectWith({
        url,
        protocol: (merged.protocol ?? "connect") as CofferProtocol,
        token: merged.token,
        jwtFile: undefined,
        project: undefined,
        region: merged.region ?? "",
        timeoutMs: 15_000,
        caFile: merged.caFile,
        certFile: merged.certFile,
        keyFile: merged.keyFile,
        profileName: name,
        profileFile: file,
        profileFound: true,
      });
      try {
        await conn.secrets.listSecrets({ region: merged.region ?? "", pageSize: 1 });
      } catch (err) {
        const e = ConnectError.from(err);
        // Any answer but UNAUTHENTICATED means the server took the token.
        if (
          e.code === Code.Unauthenticated ||
          e.code === Code.Unavailable ||
          e.code === Code.DeadlineExceeded
        ) {
          const d = describeError(e, ctx.errorContext);
          throw new CliError(
            `not logged in: ${d.message}`,
            d.exitCode,
            e.code === Code.Unauthenticated
              ? "check the token; nothing was stored"
              : `${d.hint ?? ""}; or --no-verify to store it anyway`,
          );
        }
      }
    }
    await updateProfile(ctx, file, name, changes);
    await ctx.io.stdout.write(
      `Logged in to ${merged.url ?? defaultUrl(merged.protocol)}; saved profile "${name}" in ${file} (mode 0600).\n`,
    );
    return undefined;
  },

  async set(ctx, { values }) {
    const changes: Partial<Record<keyof Profile, string | undefined>> = await changesFrom(
      ctx,
      values,
    );
    for (const key of values.unset ?? []) {
      const k = PROFILE_KEYS.find((p) => p === key || KEY_FLAGS[p] === key);
      if (k === undefined)
        throw new UsageError(`--unset: no key "${key}" (keys: ${PROFILE_KEYS.join(", ")})`);
      if (k in changes) throw new UsageError(`--unset ${key} and --${KEY_FLAGS[k]} contradict`);
      changes[k] = undefined;
    }
    if (Object.keys(changes).length === 0) {
      throw new UsageError(
        `nothing to set: give --${Object.values(KEY_FLAGS).join(", --")} or --unset`,
      );
    }
    const file = profileFilePath(ctx.env, ctx.home);
    const name = values.profile ?? (ctx.env.COFFER_PROFILE || DEFAULT_PROFILE);
    await updateProfile(ctx, file, name, changes);
    await ctx.io.stdout.write(`Saved profile "${name}" in ${file} (mode 0600).\n`);
    return undefined;
  },

  async show(ctx, { values }) {
    const file = profileFilePath(ctx.env, ctx.home);
    const name = values.profile ?? (ctx.env.COFFER_PROFILE || DEFAULT_PROFILE);
    const profile = (await readProfileFile(file))?.profiles[name];
    if (profile === undefined) {
      throw new CliError(
        `no profile "${name}" in ${file}`,
        ExitCode.NotFound,
        'create it with "coffer login"',
      );
    }
    await ctx.io.stdout.write(
      formatDetails([
        ["file", file],
        ["profile", name],
        ...PROFILE_KEYS.map((k): [string, string | undefined] => [
          KEY_FLAGS[k],
          k === "token" && profile.token !== undefined ? maskToken(profile.token) : profile[k],
        ]),
      ]),
    );
    return undefined;
  },

  async list(ctx) {
    const file = profileFilePath(ctx.env, ctx.home);
    const data = await readProfileFile(file);
    const names = Object.keys(data?.profiles ?? {});
    if (names.length === 0) {
      await ctx.io.stderr.write(`No profiles in ${file}.\n`);
      return undefined;
    }
    await ctx.io.stdout.write(
      formatTable(
        ["PROFILE", "URL", "PROJECT"],
        names.map((n) => [n, data?.profiles[n]?.url ?? "", data?.profiles[n]?.project ?? ""]),
      ),
    );
    return undefined;
  },

  async delete(ctx, { args }) {
    const file = profileFilePath(ctx.env, ctx.home);
    const name = args[0] as string;
    const data = await readProfileFile(file);
    if (data?.profiles[name] === undefined) {
      throw new CliError(`no profile "${name}" in ${file}`, ExitCode.NotFound);
    }
    delete data.profiles[name];
    await writeProfileFile(file, data);
    await ctx.io.stdout.write(`Removed profile "${name}" from ${file}.\n`);
    return undefined;
  },
};
