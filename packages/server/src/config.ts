import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";

/** A listen address, `host:port` (port 0 picks a free port). */
export interface ListenAddress {
  host: string;
  port: number;
}

export type RegionDatabase =
  | { driver: "postgres"; url: string; poolSize: number }
  | { driver: "pglite"; dataDir: string | undefined };

/** The validated configuration, built once at start and passed down. */
export interface Config {
  grpcListen: ListenAddress;
  httpListen: ListenAddress;
  /** Region names; the first is the default region. */
  regions: string[];
  databases: Record<string, RegionDatabase>;
  dataDir: string;
  /** `COFFER_MASTER_KEYS`, when set: `id:base64,...`, first active. */
  masterKeys: string | undefined;
  /** The key file; created on first start only for the embedded database. */
  masterKeyFile: string | undefined;
  deletionWindowMs: number;
  sweepIntervalMs: number;
  shutdownGraceMs: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "30s", "15m", "12h", "7d". */
export function parseDuration(value: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  if (!m?.[1] || !m[2]) return undefined;
  return Number(m[1]) * (UNITS[m[2]] ?? 0);
}

const regionName = /^[a-z][a-z0-9-]{0,31}$/;

const duration = (min: number, max: number) =>
  z.string().transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < min || ms > max) {
      ctx.addIssue({
        code: "custom",
        message: `must be a duration such as 500ms, 30s, 15m, 12h or 7d, between ${min} ms and ${max} ms (got "${v}")`,
      });
      return z.NEVER;
    }
    return ms;
  });

const listen = z.string().transform((v, ctx) => {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m?.[1] || port > 65535) {
    ctx.addIssue({
      code: "custom",
      message: `must be host:port, e.g. 127.0.0.1:8080 (got "${v}")`,
    });
    return z.NEVER;
  }
  return { host: m[1].replace(/^\[|\]$/g, ""), port };
});

const DAY = 86_400_000;

const settings = z.object({
  COFFER_GRPC_LISTEN: listen.prefault("127.0.0.1:50051"),
  COFFER_HTTP_LISTEN: listen.prefault("127.0.0.1:8080"),
  COFFER_REGIONS: z
    .string()
    .default("local")
    .transform((v, ctx) => {
      const names = v.split(",").map((s) => s.trim());
      const bad = names.find((n) => !regionName.test(n));
      if (bad !== undefined) {
        ctx.addIssue({
          code: "custom",
          message: `each region must be 1-32 lowercase letters, digits or "-", starting with a letter, such as fr-par (got "${bad}")`,
        });
        return z.NEVER;
      }
      if (new Set(names).size !== names.length) {
        ctx.addIssue({ code: "custom", message: "lists a region twice" });
        return z.NEVER;
      }
      return names;
    }),
  COFFER_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  COFFER_DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(1000).default(10),
  COFFER_DATA_DIR: z.string().min(1).default("./.coffer"),
  COFFER_MASTER_KEYS: z.string().min(1).optional(),
  COFFER_MASTER_KEY_FILE: z.string().min(1).optional(),
  COFFER_DELETION_WINDOW: duration(0, 3650 * DAY).default(7 * DAY),
  COFFER_SWEEP_INTERVAL: duration(100, DAY).default(30_000),
  COFFER_SHUTDOWN_GRACE: duration(0, 3_600_000).default(10_000),
  COFFER_LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info"),
});

/** The settings Coffer reads, for documentation and for picking them out of the environment. */
export const SETTINGS = Object.keys(settings.shape);

/**
 * Builds the configuration from an optional JSON file (`COFFER_CONFIG_FILE`,
 * an object of the same setting names) overlaid by the environment. Every
 * problem is reported at once, each naming its setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const fromFile = env.COFFER_CONFIG_FILE ? readConfigFile(env.COFFER_CONFIG_FILE) : {};
  const raw: Record<string, string | undefined> = { ...fromFile };
  for (const name of SETTINGS) {
    const value = env[name];
    if (value !== undefined && value !== "") raw[name] = value;
  }
  const parsed = settings.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const s = parsed.data;
  const regions = s.COFFER_REGIONS;
  const url = s.COFFER_DATABASE_URL;
  if (url !== undefined && regions.length > 1 && !url.includes("{region}")) {
    throw new ConfigError(
      "invalid configuration:\n  COFFER_DATABASE_URL: with several regions it must contain {region}, replaced by each region's name, so that each region has its own database (e.g. postgres://host/coffer_{region})",
    );
  }
  const databases: Record<string, RegionDatabase> = {};
  for (const region of regions) {
    databases[region] =
      url === undefined
        ? { driver: "pglite", dataDir: path.resolve(s.COFFER_DATA_DIR, "regions", region) }
        : {
            driver: "postgres",
            url: url.replaceAll("{region}", region.replaceAll("-", "_")),
            poolSize: s.COFFER_DATABASE_POOL_SIZE,
          };
  }
  const embedded = url === undefined;
  return {
    grpcListen: s.COFFER_GRPC_LISTEN,
    httpListen: s.COFFER_HTTP_LISTEN,
    regions,
    databases,
    dataDir: path.resolve(s.COFFER_DATA_DIR),
    masterKeys: s.COFFER_MASTER_KEYS,
    masterKeyFile:
      s.COFFER_MASTER_KEY_FILE ??
      (embedded ? path.resolve(s.COFFER_DATA_DIR, "master-keys.json") : undefined),
    deletionWindowMs: s.COFFER_DELETION_WINDOW,
    sweepIntervalMs: s.COFFER_SWEEP_INTERVAL,
    shutdownGraceMs: s.COFFER_SHUTDOWN_GRACE,
    logLevel: s.COFFER_LOG_LEVEL,
  };
}

function readConfigFile(file: string): Record<string, string> {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? "not valid JSON";
    throw new ConfigError(`COFFER_CONFIG_FILE: cannot read ${file} (${reason})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(
      `COFFER_CONFIG_FILE: ${file} must hold a JSON object of settings, e.g. {"COFFER_REGIONS": "fr-par"}`,
    );
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!SETTINGS.includes(k)) {
      throw new ConfigError(
        `COFFER_CONFIG_FILE: ${file} has an unknown setting "${k}"; known: ${SETTINGS.join(", ")}`,
      );
    }
    out[k] = String(v);
  }
  return out;
}
