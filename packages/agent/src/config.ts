import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import path from "node:path";
import {
  DURATION_EXAMPLES,
  durationRangeRule,
  durationRule,
  parseDuration,
} from "@coffer/api/duration";
import { isScalar, parseDocument, visit } from "yaml";
import * as z from "zod/mini";
import "./zod-english.ts";

/** How a client talks to Coffer. */
export type AgentProtocol = "connect" | "grpc" | "grpc-web";

/** Which secret a file follows. */
export type SecretRef =
  | { kind: "id"; id: string }
  | { kind: "location"; path: string; name: string };

/** Which revision a file follows: the newest enabled one, or a pinned number. */
export type RevisionTarget = "latest_enabled" | number;

/** How a payload becomes a file. */
export type FileFormat =
  | { kind: "raw" }
  | { kind: "json_field"; field: string }
  | { kind: "dotenv" };

/** What to do after files changed, debounced. */
export interface OnChangeConfig {
  action:
    | { kind: "command"; argv: string[]; timeoutMs: number }
    | { kind: "signal"; signal: NodeJS.Signals; pid?: number; pidFile?: string };
  debounceMs: number;
}

/** One file the agent keeps. */
export interface SecretFileConfig {
  ref: SecretRef;
  revision: RevisionTarget;
  /** Absolute path of the file. */
  destination: string;
  /** Permission bits, e.g. 0o400. */
  mode: number;
  /** Numeric uid and gid (names are resolved when the config is loaded). */
  uid?: number;
  gid?: number;
  format: FileFormat;
  onChange?: OnChangeConfig;
}

/** `server.auth`: where the platform's JWT is, and the Coffer token's life to ask for. */
export interface AgentJwtAuth {
  /** Absolute path of the JWT, read again at each renewal (Kubernetes rotates it). */
  jwtFile: string;
  /** The token life asked for; unset: the identity binding's token_ttl. */
  ttlMs?: number;
}

/** TLS material for an https:// server URL, read from its files. */
export interface AgentTlsConfig {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** The validated agent configuration: everything {@link startAgent} needs. */
export interface AgentConfig {
  server: {
    url: string;
    protocol: AgentProtocol;
    /** The bearer token (from token_file or token_env); empty with `auth`. Never logged. */
    token: string;
    /**
     * Sign in with a platform's JWT instead (`server.auth`): the agent
     * exchanges it for short-lived Coffer tokens and renews them.
     */
    auth?: AgentJwtAuth;
    /** The environment variable the token came from (never passed to on_change commands). */
    tokenEnv?: string;
    tls?: AgentTlsConfig;
    /** Deadline of each unary call (not of the watch stream). */
    callTimeoutMs: number;
  };
  projectId: string;
  /** Empty: the server's default region. */
  region: string;
  stateFile: string;
  healthListen?: { host: string; port: number };
  heartbeatIntervalMs: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  onChange?: OnChangeConfig;
  secrets: SecretFileConfig[];
}

/** A configuration that cannot be used; the message names the field and the rule. */
export class AgentConfigError extends Error {
  override readonly name = "AgentConfigError";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAME = /^[A-Za-z0-9._-]{1,255}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const duration = (min: number, max: number) =>
  z.pipe(
    z.string({ error: `must be a duration like ${DURATION_EXAMPLES}` }),
    z.transform((v: string, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined || ms < min || ms > max) {
        const message = ms === undefined ? durationRule(v) : durationRangeRule(v, min, max);
        ctx.issues.push({ code: "custom", message, input: v });
        return z.NEVER;
      }
      return ms;
    }),
  );

const nonEmpty = (what: string) =>
  z.string({ error: `must be ${what}` }).check(z.minLength(1, { error: `must be ${what}` }));

const listen = z.pipe(
  z.string({ error: 'must be host:port, like "127.0.0.1:9300"' }),
  z.transform((v: string, ctx) => {
    const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(v);
    const port = Number(m?.[2]);
    if (!m?.[1] || port > 65535) {
      ctx.issues.push({
        code: "custom",
        message: `must be host:port, like "127.0.0.1:9300" (got "${v}")`,
        input: v,
      });
      return z.NEVER;
    }
    return { host: m[1].replace(/^\[|\]$/g, ""), port };
  }),
);

const folder = z.pipe(
  z.string({ error: 'must be a folder like "/" or "/prod/db"' }),
  z.transform((v: string, ctx) => {
    const trimmed = v.length > 1 ? v.replace(/\/+$/, "") : v;
    const segments = trimmed === "/" ? [] : trimmed.split("/").slice(1);
    const ok =
      trimmed.startsWith("/") &&
      trimmed.length <= 1024 &&
      segments.length <= 32 &&
      segments.every((s) => NAME.test(s) && s !== "." && s !== "..");
    if (!ok) {
      ctx.issues.push({
        code: "custom",
        message: `must be a folder like "/" or "/prod/db" (got "${v}")`,
        input: v,
      });
      return z.NEVER;
    }
    return trimmed;
  }),
);

const secretName = z.string({ error: "must be a secret name" }).check(
  z.refine((v) => NAME.test(v) && v !== "." && v !== "..", {
    error: 'must be 1-255 letters, digits, ".", "_" or "-"',
  }),
);

/**
 * Octal permission bits. YAML reads an unquoted 0400 as the number 400; the
 * loader puts such numbers back to their source text before validation (see
 * {@link keepModesAsWritten}), so `mode: 0400` and `mode: "0400"` both work.
 */
const mode = z
  .pipe(
    z.string({ error: 'must be an octal string like "0400"' }).check(
      z.refine((v) => /^(0o?)?[0-7]{3,4}$/.test(v), {
        error: 'must be an octal string like "0400"',
      }),
    ),
    z.transform((v: string) => Number.parseInt(v.replace(/^0o/, ""), 8)),
  )
  .check(z.refine((v) => v <= 0o7777, { error: 'must be an octal string like "0400"' }));

const userOrGroup = z.union(
  [z.number().check(z.int(), z.gte(0)), z.string().check(z.minLength(1))],
  { error: "must be a numeric id or a name" },
);

const SIGNALS = Object.keys(osConstants.signals);

const onChange = z
  .strictObject({
    command: z.optional(
      z
        .array(z.string(), { error: 'must be a list of strings, like ["nginx", "-s", "reload"]' })
        .check(z.minLength(1, { error: "must name the program to run" })),
    ),
    command_timeout: z.optional(duration(100, 3_600_000)),
    signal: z.optional(
      z
        .pipe(
          z.string({ error: "must be a signal name like SIGHUP" }),
          z.transform((v: string) => (v.startsWith("SIG") ? v : `SIG${v}`).toUpperCase()),
        )
        .check(
          z.refine((v) => SIGNALS.includes(v), { error: "must be a signal name like SIGHUP" }),
        ),
    ),
    pid: z.optional(z.number({ error: "must be a process id" }).check(z.int(), z.gte(1))),
    pid_file: z.optional(nonEmpty("a file holding a process id")),
    debounce: z.optional(duration(0, 3_600_000)),
  })
  .check(
    z.superRefine((v, ctx) => {
      if ((v.command === undefined) === (v.signal === undefined)) {
        ctx.addIssue({ code: "custom", message: "needs exactly one of command or signal" });
      }
      if (
        v.signal !== undefined &&
        v.command === undefined &&
        (v.pid === undefined) === (v.pid_file === undefined)
      ) {
        ctx.addIssue({
          code: "custom",
          path: ["signal"],
          message: "needs exactly one of pid or pid_file",
        });
      }
      if (v.command !== undefined && (v.pid !== undefined || v.pid_file !== undefined)) {
        ctx.addIssue({ code: "custom", message: "pid and pid_file go with signal, not command" });
      }
      if (v.command === undefined && v.command_timeout !== undefined) {
        ctx.addIssue({ code: "custom", path: ["command_timeout"], message: "goes with command" });
      }
    }),
  );

const secret = z
  .strictObject({
    id: z.optional(
      z
        .string({ error: "must be a secret UUID" })
        .check(z.refine((v) => UUID.test(v), { error: "must be a secret UUID" })),
    ),
    path: z.optional(folder),
    name: z.optional(secretName),
    revision: z.optional(
      z.pipe(
        z
          .unknown()
          .check(
            z.refine(
              (v) =>
                v === "latest_enabled" ||
                (typeof v === "number" && Number.isInteger(v) && v >= 1) ||
                (typeof v === "string" && /^[1-9]\d*$/.test(v)),
              { error: 'must be "latest_enabled" or a revision number' },
            ),
          ),
        z.transform((v) => v as "latest_enabled" | number | string),
      ),
    ),
    destination: nonEmpty("a file path"),
    mode: z.optional(mode),
    owner: z.optional(userOrGroup),
    group: z.optional(userOrGroup),
    format: z.optional(
      z.enum(["raw", "json_field", "dotenv"], { error: "must be raw, json_field or dotenv" }),
    ),
    field: z.optional(nonEmpty("a JSON field name")),
    on_change: z.optional(onChange),
  })
  .check(
    z.superRefine((v, ctx) => {
      if (v.id !== undefined && (v.path !== undefined || v.name !== undefined)) {
        ctx.addIssue({
          code: "custom",
          message: "names a secret by id or by path and name, not both",
        });
      } else if (v.id === undefined && v.name === undefined) {
        ctx.addIssue(
          v.path === undefined
            ? { code: "custom", message: "needs id, or name (and path, default /)" }
            : { code: "custom", path: ["name"], message: "is required with path" },
        );
      }
      if (v.format === "json_field" && v.field === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["field"],
          message: "is required with format json_field",
        });
      }
      if (v.format !== "json_field" && v.field !== undefined) {
        ctx.addIssue({ code: "custom", path: ["field"], message: "goes with format json_field" });
      }
    }),
  );

const schema = z.strictObject({
  server: z.strictObject(
    {
      url: z.string({ error: "must be a URL like http://127.0.0.1:8080" }).check(
        z.refine((v) => /^https?:\/\/[^/]+/.test(v), {
          error: "must be a URL like http://127.0.0.1:8080",
        }),
      ),
      protocol: z.optional(
        z.enum(["connect", "grpc", "grpc-web"], { error: "must be connect, grpc or grpc-web" }),
      ),
      token_file: z.optional(nonEmpty("a file path")),
      token_env: z.optional(
        z
          .string({ error: "must be an environment variable name" })
          .check(
            z.refine((v) => ENV_NAME.test(v), { error: "must be an environment variable name" }),
          ),
      ),
      auth: z.optional(
        z.strictObject(
          {
            jwt_file: nonEmpty("a file path"),
            ttl: z.optional(duration(60_000, 3_600_000)),
          },
          { error: "must be a mapping with jwt_file" },
        ),
      ),
      tls: z.optional(
        z.strictObject({
          ca_file: z.optional(nonEmpty("a file path")),
          cert_file: z.optional(nonEmpty("a file path")),
          key_file: z.optional(nonEmpty("a file path")),
        }),
      ),
      timeout: z.optional(duration(100, 600_000)),
    },
    { error: "must be a mapping with at least url" },
  ),
  project_id: z
    .string({ error: "must be a project UUID" })
    .check(z.refine((v) => UUID.test(v), { error: "must be a project UUID" })),
  region: z.optional(
    z
      .string({ error: "must be a region name" })
      .check(z.regex(/^[a-z][a-z0-9-]{0,31}$/, { error: "must be a region name like fr-par" })),
  ),
  state_file: nonEmpty("a file path"),
  health_listen: z.optional(listen),
  heartbeat_interval: z.optional(duration(1000, 300_000)),
  log_level: z.optional(
    z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"], {
      error: "must be trace, debug, info, warn, error, fatal or silent",
    }),
  ),
  on_change: z.optional(onChange),
  secrets: z
    .array(secret, { error: "must be a list of secrets" })
    .check(z.minLength(1, { error: "must name at least one secret" })),
});

type RawConfig = z.infer<typeof schema>;
type RawOnChange = z.infer<typeof onChange>;

/** How a config's relative paths, environment and user names are looked up. */
export interface ConfigContext {
  /** Folder that relative paths are resolved against (the config file's). */
  baseDir: string;
  env: NodeJS.ProcessEnv;
  /** Reads token and TLS files; defaults to the file system. */
  readFile?: (file: string) => Promise<Buffer>;
  /** Resolves user and group names; defaults to /etc/passwd, /etc/group, then getent. */
  lookupId?: (kind: "user" | "group", name: string) => Promise<number | undefined>;
}

/**
 * Reads and validates an agent config file (YAML). Relative paths in it are
 * resolved against the file's folder. Throws {@link AgentConfigError}.
 */
export async function loadAgentConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new AgentConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  return parseAgentConfig(text, { baseDir: path.dirname(path.resolve(file)), env });
}

/** Validates a YAML config text; see {@link loadAgentConfig}. */
export async function parseAgentConfig(text: string, context: ConfigContext): Promise<AgentConfig> {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    throw new AgentConfigError(`config is not valid YAML: ${first?.message ?? "parse error"}`);
  }
  keepModesAsWritten(doc);
  const value: unknown = doc.toJS() ?? {};
  const parsed = schema.safeParse(value, { reportInput: true });
  if (!parsed.success) throw new AgentConfigError(describeIssues(parsed.error.issues));
  return resolve(parsed.data, context);
}

/** `mode: 0400` unquoted is the number 400 to YAML: take the digits as written. */
function keepModesAsWritten(doc: ReturnType<typeof parseDocument>): void {
  visit(doc, {
    Pair(_, pair) {
      if (
        isScalar(pair.key) &&
        pair.key.value === "mode" &&
        isScalar(pair.value) &&
        typeof pair.value.value === "number" &&
        pair.value.source !== undefined
      ) {
        pair.value.value = pair.value.source;
      }
    },
  });
}

/** `secrets[2].mode: must be ...`, one line per issue. */
function describeIssues(issues: z.core.$ZodIssue[]): string {
  const lines = issues.map((issue) => {
    let where = "";
    for (const part of issue.path) {
      if (typeof part === "number") where += `[${part}]`;
      else where += where === "" ? String(part) : `.${String(part)}`;
    }
    let message = issue.message;
    if (issue.code === "unrecognized_keys") {
      message = `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    } else if (issue.code === "invalid_type" && issue.input === undefined) {
      message = "is required";
    }
    return where === "" ? message : `${where}: ${message}`;
  });
  return `invalid agent config:\n  ${lines.join("\n  ")}`;
}

async function resolve(raw: RawConfig, context: ConfigContext): Promise<AgentConfig> {
  const abs = (p: string) => path.resolve(context.baseDir, p);
  const read = context.readFile ?? ((f: string) => readFile(f));
  const lookupId = context.lookupId ?? lookupSystemId;
  const problems: string[] = [];

  let token = "";
  let tokenEnv: string | undefined;
  const server = raw.server;
  let auth: AgentJwtAuth | undefined;
  if (server.auth !== undefined) {
    if (server.token_file !== undefined || server.token_env !== undefined) {
      problems.push(
        "server.auth: signs in with a JWT instead of a token: remove token_file and token_env",
      );
    }
    const jwtFile = abs(server.auth.jwt_file);
    auth = {
      jwtFile,
      ...(server.auth.ttl !== undefined && { ttlMs: server.auth.ttl }),
    };
    // Read once now so that a wrong path fails at start, in the config's
    // words; the agent reads it again at each exchange.
    try {
      if ((await read(jwtFile)).toString("utf8").trim() === "") {
        problems.push(`server.auth.jwt_file: ${jwtFile} is empty`);
      }
    } catch (err) {
      problems.push(`server.auth.jwt_file: cannot read ${jwtFile} (${errCode(err)})`);
    }
  } else if (server.token_file !== undefined && server.token_env !== undefined) {
    problems.push("server: set token_file or token_env, not both");
  } else if (server.token_file !== undefined) {
    try {
      token = (await read(abs(server.token_file))).toString("utf8").trim();
      if (token === "") problems.push(`server.token_file: ${abs(server.token_file)} is empty`);
    } catch (err) {
      problems.push(`server.token_file: cannot read ${abs(server.token_file)} (${errCode(err)})`);
    }
  } else {
    const name = server.token_env ?? "COFFER_TOKEN";
    tokenEnv = name;
    token = context.env[name]?.trim() ?? "";
    if (token === "") {
      problems.push(
        `server.token_env: environment variable ${name} is not set (or set server.token_file or server.auth.jwt_file)`,
      );
    }
  }

  let tls: AgentTlsConfig | undefined;
  if (server.tls !== undefined) {
    if (!server.url.startsWith("https://")) problems.push("server.tls: needs an https:// url");
    if ((server.tls.cert_file === undefined) !== (server.tls.key_file === undefined)) {
      problems.push("server.tls: cert_file and key_file go together");
    }
    tls = {};
    for (const [key, field] of [
      ["ca", "ca_file"],
      ["cert", "cert_file"],
      ["key", "key_file"],
    ] as const) {
      const file = server.tls[field];
      if (file === undefined) continue;
      try {
        tls[key] = await read(abs(file));
      } catch (err) {
        problems.push(`server.tls.${field}: cannot read ${abs(file)} (${errCode(err)})`);
      }
    }
  }

  const secrets: SecretFileConfig[] = [];
  const seen = new Map<string, number>();
  for (const [i, s] of raw.secrets.entries()) {
    const destination = abs(s.destination);
    const before = seen.get(destination);
    if (before !== undefined) {
      problems.push(
        `secrets[${i}].destination: ${destination} is also the destination of secrets[${before}]`,
      );
    }
    seen.set(destination, i);
    const file: SecretFileConfig = {
      ref:
        s.id !== undefined
          ? { kind: "id", id: s.id.toLowerCase() }
          : { kind: "location", path: s.path ?? "/", name: s.name ?? "" },
      revision:
        s.revision === undefined || s.revision === "latest_enabled"
          ? "latest_enabled"
          : Number(s.revision),
      destination,
      mode: s.mode ?? 0o400,
      format:
        s.format === "json_field"
          ? { kind: "json_field", field: s.field ?? "" }
          : { kind: s.format ?? "raw" },
    };
    for (const [kind, field] of [
      ["user", "owner"],
      ["group", "group"],
    ] as const) {
      const v = s[field];
      if (v === undefined) continue;
      let id: number | undefined;
      if (typeof v === "number") id = v;
      else if (/^\d+$/.test(v)) id = Number(v);
      else id = await lookupId(kind, v);
      if (id === undefined) problems.push(`secrets[${i}].${field}: no ${kind} named "${v}"`);
      else if (kind === "user") file.uid = id;
      else file.gid = id;
    }
    if (s.on_change !== undefined) file.onChange = toOnChange(s.on_change, abs);
    secrets.push(file);
  }

  if (problems.length > 0)
    throw new AgentConfigError(`invalid agent config:\n  ${problems.join("\n  ")}`);

  return {
    server: {
      url: server.url,
      protocol: server.protocol ?? "connect",
      token,
      ...(auth !== undefined && { auth }),
      ...(tokenEnv !== undefined && { tokenEnv }),
      ...(tls !== undefined && { tls }),
      callTimeoutMs: server.timeout ?? 30_000,
    },
    projectId: raw.project_id.toLowerCase(),
    region: raw.region ?? "",
    stateFile: abs(raw.state_file),
    ...(raw.health_listen !== undefined && { healthListen: raw.health_listen }),
    heartbeatIntervalMs: raw.heartbeat_interval ?? 15_000,
    logLevel: raw.log_level ?? "info",
    ...(raw.on_change !== undefined && { onChange: toOnChange(raw.on_change, abs) }),
    secrets,
  };
}

function toOnChange(raw: RawOnChange, abs: (p: string) => string): OnChangeConfig {
  const debounceMs = raw.debounce ?? 1000;
  if (raw.command !== undefined) {
    return {
      action: { kind: "command", argv: raw.command, timeoutMs: raw.command_timeout ?? 60_000 },
      debounceMs,
    };
  }
  return {
    action: {
      kind: "signal",
      signal: (raw.signal ?? "SIGHUP") as NodeJS.Signals,
      ...(raw.pid !== undefined && { pid: raw.pid }),
      ...(raw.pid_file !== undefined && { pidFile: abs(raw.pid_file) }),
    },
    debounceMs,
  };
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? "error";
}

/** A user or group id by name: /etc/passwd or /etc/group first, then getent (NSS, LDAP). */
async function lookupSystemId(kind: "user" | "group", name: string): Promise<number | undefined> {
  const db = kind === "user" ? "passwd" : "group";
  try {
    const text = await readFile(`/etc/${db}`, "utf8");
    for (const line of text.split("\n")) {
      const fields = line.split(":");
      if (fields[0] === name && fields[2] !== undefined && /^\d+$/.test(fields[2])) {
        return Number(fields[2]);
      }
    }
  } catch {
    // No such file: ask getent.
  }
  return new Promise((resolve) => {
    execFile("getent", [db, name], { timeout: 5000 }, (err, stdout) => {
      const id = stdout.split(":")[2];
      resolve(err === null && id !== undefined && /^\d+$/.test(id) ? Number(id) : undefined);
    });
  });
}
