import { readFile } from "node:fs/promises";
import { AdminService, SecretService } from "@coffer/api";
import type { CofferClient, CofferProtocol } from "@coffer/client";
import type { Client } from "@connectrpc/connect";
import type { Values } from "./args.ts";
import type { Context } from "./context.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import type { CONNECTION_OPTIONS, PROJECT_OPTION } from "./flags.ts";
import { DEFAULT_PROFILE, type Profile, profileFilePath, readProfileFile } from "./profile.ts";
import { isUuid, parseDuration } from "./refs.ts";

/**
 * Where the CLI connects, with which token, in which project: each setting
 * comes from its flag, else its COFFER_* variable, else the profile, else
 * a default.
 */

type ConnectionValues = Values<typeof CONNECTION_OPTIONS & typeof PROJECT_OPTION>;

/** The settings a command connects with. */
export interface Settings {
  url: string;
  protocol: CofferProtocol;
  token: string | undefined;
  /**
   * Sign in with the JWT in this file instead of a token (`--jwt-file`, or
   * COFFER_JWT_FILE when COFFER_TOKEN is unset): it is exchanged for a
   * short-lived Coffer token at the first call.
   */
  jwtFile: string | undefined;
  /** As given: an id or a name, resolved by {@link requireProject}. */
  project: string | undefined;
  region: string;
  timeoutMs: number;
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  profileName: string;
  profileFile: string;
  /** Whether the profile file exists and has the named profile. */
  profileFound: boolean;
}

const PROTOCOLS: readonly CofferProtocol[] = ["connect", "grpc", "grpc-web"];

/**
 * Resolves the settings: flag, else COFFER_* variable, else profile, else
 * default. Reads the profile file (refusing one that others may read).
 */
export async function resolveSettings(
  ctx: Context,
  values: Partial<ConnectionValues>,
): Promise<Settings> {
  const env = ctx.env;
  const profileFile = profileFilePath(env, ctx.home);
  const named = values.profile ?? (env.COFFER_PROFILE || undefined);
  const profileName = named ?? DEFAULT_PROFILE;
  const file = await readProfileFile(profileFile);
  const profile: Profile | undefined = file?.profiles[profileName];
  if (named !== undefined && profile === undefined) {
    throw new UsageError(
      `no profile "${profileName}" in ${profileFile}`,
      `create it with "coffer login --profile ${profileName} --url URL --token TOKEN"`,
    );
  }
  const pick = (flag: string | undefined, variable: string, key: keyof Profile) =>
    flag ?? (env[variable] || undefined) ?? profile?.[key];
  const protocolText = pick(values.protocol, "COFFER_PROTOCOL", "protocol") ?? "connect";
  if (!(PROTOCOLS as readonly string[]).includes(protocolText)) {
    throw new UsageError(`--protocol must be connect, grpc or grpc-web (got "${protocolText}")`);
  }
  const protocol = protocolText as CofferProtocol;
  const url = pick(values.url, "COFFER_URL", "url") ?? defaultUrl(protocol);
  checkUrl(url);
  const timeoutMs =
    values.timeout === undefined ? 30_000 : parseDuration(values.timeout, "--timeout");
  if (timeoutMs < 1) throw new UsageError("--timeout must be at least 1ms");
  // A token wins over a JWT file, as a variable wins over the profile; the
  // flag, asked for on this command line, wins over both.
  const flagJwt = values["jwt-file"];
  const envToken = env.COFFER_TOKEN || undefined;
  const jwtFile =
    flagJwt ?? (envToken === undefined ? env.COFFER_JWT_FILE || undefined : undefined);
  return {
    url,
    protocol,
    token: jwtFile !== undefined ? undefined : (envToken ?? profile?.token),
    jwtFile,
    project: pick(values.project, "COFFER_PROJECT", "project"),
    region: pick(values.region, "COFFER_REGION", "region") ?? "",
    timeoutMs,
    caFile: pick(values["ca-file"], "COFFER_CA_FILE", "caFile"),
    certFile: pick(values["cert-file"], "COFFER_CERT_FILE", "certFile"),
    keyFile: pick(values["key-file"], "COFFER_KEY_FILE", "keyFile"),
    profileName,
    profileFile,
    profileFound: profile !== undefined,
  };
}

/** The url of a server on this machine with the default ports. */
export function defaultUrl(protocol: string | undefined): string {
  return protocol === "grpc" ? "http://127.0.0.1:50051" : "http://127.0.0.1:8080";
}

/** @throws UsageError unless `url` is an http:// or https:// URL. */
export function checkUrl(url: string): void {
  if (!/^https?:\/\//i.test(url)) {
    throw new UsageError(
      `--url must start with http:// or https:// (got "${url}")`,
      /^[\w.[\]:-]+$/.test(url) ? `did you mean http://${url}?` : undefined,
    );
  }
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url must be a URL like http://127.0.0.1:8080 (got "${url}")`);
  }
}

/** Clients of both services over one transport. */
export interface Connection {
  settings: Settings;
  secrets: CofferClient;
  admin: Client<typeof AdminService>;
}

/**
 * Connects (lazily: the first call opens the connection) with the resolved
 * settings.
 * @throws CliError (exit 4) when there is no token, saying how to set one.
 */
export async function connect(
  ctx: Context,
  values: Partial<ConnectionValues>,
): Promise<Connection> {
  const settings = await resolveSettings(ctx, values);
  ctx.errorContext.url = settings.url;
  if (settings.jwtFile !== undefined) ctx.errorContext.jwtFile = settings.jwtFile;
  return connectWith(settings);
}

/** {@link connect} with settings already resolved (and possibly changed, as by `coffer login`). */
export async function connectWith(settings: Settings): Promise<Connection> {
  if (settings.token === undefined && settings.jwtFile === undefined) {
    throw new CliError(
      "no token: Coffer needs one for every call",
      ExitCode.Denied,
      `export COFFER_TOKEN=coffer_... (the admin token "coffer server" printed on its first start, or one from "coffer token create"), or run "coffer login --url ${settings.url} --token TOKEN" to store it in ${settings.profileFile}; a workload with a JWT (a CI job's OIDC token) sets COFFER_JWT_FILE instead`,
    );
  }
  const tls = await readTls(settings);
  // Loaded here, not at the top: help and argument errors need no transport,
  // and every command starts faster without it.
  const [{ createCofferTransport, jwtTokenProvider }, { createClient }] = await Promise.all([
    import("@coffer/client"),
    import("@connectrpc/connect"),
  ]);
  const target = {
    url: settings.url,
    protocol: settings.protocol,
    ...(tls !== undefined && { tls }),
  };
  const token =
    settings.token ??
    jwtTokenProvider({
      ...target,
      jwtFile: settings.jwtFile as string,
      timeoutMs: settings.timeoutMs,
    });
  const transport = createCofferTransport({
    ...target,
    token,
    timeoutMs: settings.timeoutMs,
  });
  return {
    settings,
    secrets: createClient(SecretService, transport),
    admin: createClient(AdminService, transport),
  };
}

async function readTls(
  settings: Settings,
): Promise<{ ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined> {
  const { caFile, certFile, keyFile } = settings;
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return undefined;
  if (!settings.url.startsWith("https://")) {
    throw new UsageError(
      `--ca-file, --cert-file and --key-file need an https:// url (got ${settings.url})`,
    );
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError("--cert-file and --key-file go together");
  }
  const read = async (file: string, flag: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new UsageError(`cannot read ${flag} ${file}: ${(err as Error).message}`);
    }
  };
  return {
    ...(caFile !== undefined && { ca: await read(caFile, "--ca-file") }),
    ...(certFile !== undefined && { cert: await read(certFile, "--cert-file") }),
    ...(keyFile !== undefined && { key: await read(keyFile, "--key-file") }),
  };
}

/**
 * The project's id: the setting as is when it is a UUID, else the id of
 * the project with that name (which needs a token that may list projects).
 * @throws UsageError when no project is set, saying how to set one.
 */
export async function requireProject(conn: Connection): Promise<string> {
  const project = conn.settings.project;
  if (project === undefined || project === "") {
    throw new UsageError(
      "no project: Coffer keeps secrets in projects",
      'pass --project ID, export COFFER_PROJECT=ID, or run "coffer profile set --project ID"; "coffer project list" shows them, "coffer project create NAME" makes one',
    );
  }
  return projectIdFor(conn, project);
}

/**
 * A project given by id (as is) or by name (looked up through the projects
 * the token administers).
 */
export async function projectIdFor(conn: Connection, project: string): Promise<string> {
  if (isUuid(project)) return project.toLowerCase();
  const matches: string[] = [];
  let pageToken = "";
  do {
    const res = await conn.admin.listProjects({ pageSize: 1000, pageToken });
    for (const p of res.projects) if (p.name === project) matches.push(p.id);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  if (matches.length === 0) {
    throw new CliError(
      `no project named "${project}"`,
      ExitCode.NotFound,
      '"coffer project list" shows the projects you administer; give a project by its id otherwise',
    );
  }
  if (matches.length > 1) {
    throw new UsageError(
      `${matches.length} projects are named "${project}": give one by id (${matches.join(", ")})`,
    );
  }
  return matches[0] as string;
}
