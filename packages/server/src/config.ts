import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createSecureContext } from "node:tls";
import { durationRangeRule, durationRule, parseDuration } from "@coffer/api/duration";
import { z } from "zod";
import { isWellFormedToken, weakTokenReason } from "./crypto/tokens.ts";
import type { DatabaseTarget } from "./db/client.ts";
import { DEFAULT_JWKS_MAX_AGE_MS, DEFAULT_JWKS_REFRESH_FLOOR_MS } from "./domain/identity/keys.ts";

/** A listen address, `host:port` (port 0 picks a free port). */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * A region's database, as openDatabase takes it. The environment never sets
 * a PGlite `template`: tests do, to skip initdb.
 */
export type RegionDatabase = DatabaseTarget;

/** TLS material for both servers, read from its files and checked at start. */
export interface TlsConfig {
  /** The server's certificate chain (PEM, leaf first). */
  cert: Buffer;
  /** The leaf certificate's private key (PEM, unencrypted). */
  key: Buffer;
  /**
   * CA bundle (PEM). When set, mutual TLS: every client must present a
   * certificate signed by one of these CAs, or the handshake fails.
   */
  clientCa?: Buffer;
}

/**
 * Open watch streams per token on each replica: an agent holds one, a busy
 * service a few; a leaked token or a buggy client cannot hold thousands.
 */
export const DEFAULT_WATCH_STREAMS_PER_TOKEN = 100;

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
  /** How long watch events are kept; a cursor older than that gets a RESYNC. */
  watchRetentionMs: number;
  /**
   * `COFFER_WATCH_STREAMS_PER_TOKEN`: open watch streams one token may hold
   * on each replica (DEFAULT_WATCH_STREAMS_PER_TOKEN when absent).
   */
  watchStreamsPerToken?: number;
  sweepIntervalMs: number;
  shutdownGraceMs: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** `COFFER_AUDIT_LOG`: also append audit events as JSON lines to "stdout" or this file. */
  auditLog?: string;
  /** `COFFER_BOOTSTRAP_TOKEN`: the admin token to create on an empty database, instead of a random one. */
  bootstrapToken?: string;
  /** Set when `COFFER_TLS_CERT` and `COFFER_TLS_KEY` are; both servers then speak only TLS. */
  tls?: TlsConfig;
  /**
   * `COFFER_HEALTH_INTERVAL`: how often each region's database is pinged for
   * grpc.health.v1 and the metrics (5 s when absent).
   */
  healthIntervalMs?: number;
  /** `COFFER_METRICS_LISTEN`: where `GET /metrics` is served; absent: no metrics endpoint. */
  metricsListen?: ListenAddress;
  /**
   * `COFFER_CONSOLE=on` (the default): the web console is served at `/` of
   * the HTTP port, from `dir` (tests give one) or the installed
   * `@coffer/console`'s build; absent (`off`): not served.
   */
  console?: { dir?: string };
  /** Quotas: `COFFER_MAX_SECRETS_PER_PROJECT`, `COFFER_MAX_VERSIONS_PER_SECRET`, `COFFER_RATE_LIMIT_RPS`. */
  limits: {
    /** Live secrets (not scheduled for deletion) per project, in each region. */
    secretsPerProject: number;
    /** Versions whose payload is not destroyed, per secret. */
    versionsPerSecret: number;
    /** Calls per second per token on each replica, bursts of twice that; 0 disables. */
    requestsPerSecond: number;
  };
  /**
   * `COFFER_PEER_RATE_LIMIT_RPS`: refused calls per second per peer address,
   * limited before authentication, on each replica, bursts of twice that
   * (rpc/peer-limit.ts); 0 or absent: no limit.
   */
  peerRateLimitRps?: number;
  /** `COFFER_AUDIT_RETENTION`: audit events older than this are swept; absent: 366 days. */
  auditRetentionMs?: number;
  /** How long connections may take and how many they may be, on each API port. */
  connections: ConnectionLimits;
  /**
   * `COFFER_JWKS_MAX_AGE`: how long a trusted issuer's fetched keys are used
   * before they are fetched again (a key removed at the issuer stops
   * working within it); DEFAULT_JWKS_MAX_AGE_MS when absent.
   */
  jwksMaxAgeMs?: number;
  /**
   * `COFFER_JWKS_REFRESH_FLOOR`: the least time between two fetches of one
   * issuer's keys on an unknown key id or after a failure;
   * DEFAULT_JWKS_REFRESH_FLOOR_MS when absent.
   */
  jwksRefreshFloorMs?: number;
  /**
   * `COFFER_ACCESS_BATCH_MAX`: the most accesses one statement serves (group
   * commit, db/access-queue.ts); DEFAULT_ACCESS_BATCH_MAX when absent.
   */
  accessBatchMax?: number;
}

/** Accesses served by one statement at most, by default (bench/RESULTS.md says why). */
export const DEFAULT_ACCESS_BATCH_MAX = 64;

/**
 * The defaults of {@link ConnectionLimits}; the README says why each.
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 300_000,
  maxConnections: 1_000,
  maxStreamsPerConnection: 100,
  maxBufferedRequestBytes: 64 * 1024 * 1024,
};

/**
 * The limits of both API ports (`COFFER_HEADERS_TIMEOUT` ...
 * `COFFER_MAX_BUFFERED_REQUEST_BYTES`); see the README's configuration table.
 */
export interface ConnectionLimits {
  /**
   * From accept until the first request's headers (HTTP/1.1) or first stream
   * (HTTP/2), TLS handshake and the HTTP/2 preface included; also each later
   * HTTP/1.1 request's headers.
   */
  headersTimeoutMs: number;
  /** The longest wait for the next bytes of a request body (gRPC port: for the request message). */
  bodyTimeoutMs: number;
  /** How long an HTTP/1.1 keep-alive connection or an HTTP/2 session with no open stream stays open. */
  idleTimeoutMs: number;
  /** Open connections per port; past it, a new connection is closed at once. */
  maxConnections: number;
  /** Concurrent streams per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerConnection: number;
  /** Request bytes held by all requests in flight on both ports together. */
  maxBufferedRequestBytes: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const regionName = /^[a-z][a-z0-9-]{0,31}$/;

const duration = (min: number, max: number) =>
  z.string().transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < min || ms > max) {
      const message = ms === undefined ? durationRule(v) : durationRangeRule(v, min, max);
      ctx.addIssue({ code: "custom", message });
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
  COFFER_WATCH_RETENTION: duration(1000, 365 * DAY).default(DAY),
  COFFER_WATCH_STREAMS_PER_TOKEN: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(DEFAULT_WATCH_STREAMS_PER_TOKEN),
  COFFER_SWEEP_INTERVAL: duration(100, DAY).default(30_000),
  COFFER_SHUTDOWN_GRACE: duration(0, 3_600_000).default(10_000),
  COFFER_LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info"),
  COFFER_AUDIT_LOG: z.string().min(1).optional(),
  // The message never repeats the value: it is a credential.
  COFFER_BOOTSTRAP_TOKEN: z
    .string()
    .superRefine((v, ctx) => {
      if (!isWellFormedToken(v)) {
        ctx.addIssue({
          code: "custom",
          message:
            "must be a Coffer token: coffer_ followed by 49 letters and digits ending in a checksum",
        });
        return;
      }
      // It becomes a global admin token: a guessable value is refused.
      const weak = weakTokenReason(v);
      if (weak !== undefined) {
        ctx.addIssue({
          code: "custom",
          message: `is not random enough to be an admin token: ${weak}. Generate one in this repository with: node --import tsx --input-type=module -e "import { generateToken } from '@coffer/server'; console.log(generateToken().value)", or leave it unset to have the server create and print one`,
        });
      }
    })
    .optional(),
  COFFER_TLS_CERT: z.string().min(1).optional(),
  COFFER_TLS_KEY: z.string().min(1).optional(),
  COFFER_TLS_CLIENT_CA: z.string().min(1).optional(),
  COFFER_MAX_SECRETS_PER_PROJECT: z.coerce.number().int().min(1).max(100_000_000).default(10_000),
  COFFER_MAX_VERSIONS_PER_SECRET: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  COFFER_RATE_LIMIT_RPS: z.coerce.number().int().min(0).max(1_000_000).default(200),
  // Issue 11 item 6: bounds on what callers without a valid token cost.
  COFFER_PEER_RATE_LIMIT_RPS: z.coerce.number().int().min(0).max(1_000_000).default(20),
  COFFER_AUDIT_RETENTION: duration(DAY, 36_500 * DAY).default(366 * DAY),
  COFFER_ACCESS_BATCH_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(1024)
    .default(DEFAULT_ACCESS_BATCH_MAX),
  COFFER_HEALTH_INTERVAL: duration(100, 3_600_000).default(5_000),
  // Trusted issuers' keys (domain/identity/keys.ts).
  COFFER_JWKS_MAX_AGE: duration(1000, DAY).default(DEFAULT_JWKS_MAX_AGE_MS),
  COFFER_JWKS_REFRESH_FLOOR: duration(0, 3_600_000).default(DEFAULT_JWKS_REFRESH_FLOOR_MS),
  COFFER_METRICS_LISTEN: listen.optional(),
  COFFER_CONSOLE: z.enum(["on", "off"]).default("on"),
  // Connection limits of both API ports (ConnectionLimits).
  COFFER_HEADERS_TIMEOUT: duration(100, 600_000).default(
    DEFAULT_CONNECTION_LIMITS.headersTimeoutMs,
  ),
  COFFER_BODY_TIMEOUT: duration(100, 3_600_000).default(DEFAULT_CONNECTION_LIMITS.bodyTimeoutMs),
  COFFER_IDLE_TIMEOUT: duration(100, DAY).default(DEFAULT_CONNECTION_LIMITS.idleTimeoutMs),
  COFFER_MAX_CONNECTIONS: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(DEFAULT_CONNECTION_LIMITS.maxConnections),
  COFFER_MAX_STREAMS_PER_CONNECTION: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(DEFAULT_CONNECTION_LIMITS.maxStreamsPerConnection),
  // At least one request of the largest size (512 KiB) must fit.
  COFFER_MAX_BUFFERED_REQUEST_BYTES: z.coerce
    .number()
    .int()
    .min(512 * 1024)
    .max(2 ** 40)
    .default(DEFAULT_CONNECTION_LIMITS.maxBufferedRequestBytes),
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
  const tls = loadTls(s.COFFER_TLS_CERT, s.COFFER_TLS_KEY, s.COFFER_TLS_CLIENT_CA);
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
    watchRetentionMs: s.COFFER_WATCH_RETENTION,
    watchStreamsPerToken: s.COFFER_WATCH_STREAMS_PER_TOKEN,
    sweepIntervalMs: s.COFFER_SWEEP_INTERVAL,
    shutdownGraceMs: s.COFFER_SHUTDOWN_GRACE,
    logLevel: s.COFFER_LOG_LEVEL,
    ...(s.COFFER_AUDIT_LOG !== undefined && { auditLog: s.COFFER_AUDIT_LOG }),
    ...(s.COFFER_BOOTSTRAP_TOKEN !== undefined && { bootstrapToken: s.COFFER_BOOTSTRAP_TOKEN }),
    ...(tls !== undefined && { tls }),
    healthIntervalMs: s.COFFER_HEALTH_INTERVAL,
    ...(s.COFFER_METRICS_LISTEN !== undefined && { metricsListen: s.COFFER_METRICS_LISTEN }),
    ...(s.COFFER_CONSOLE === "on" && { console: {} }),
    limits: {
      secretsPerProject: s.COFFER_MAX_SECRETS_PER_PROJECT,
      versionsPerSecret: s.COFFER_MAX_VERSIONS_PER_SECRET,
      requestsPerSecond: s.COFFER_RATE_LIMIT_RPS,
    },
    peerRateLimitRps: s.COFFER_PEER_RATE_LIMIT_RPS,
    auditRetentionMs: s.COFFER_AUDIT_RETENTION,
    accessBatchMax: s.COFFER_ACCESS_BATCH_MAX,
    jwksMaxAgeMs: s.COFFER_JWKS_MAX_AGE,
    jwksRefreshFloorMs: s.COFFER_JWKS_REFRESH_FLOOR,
    connections: {
      headersTimeoutMs: s.COFFER_HEADERS_TIMEOUT,
      bodyTimeoutMs: s.COFFER_BODY_TIMEOUT,
      idleTimeoutMs: s.COFFER_IDLE_TIMEOUT,
      maxConnections: s.COFFER_MAX_CONNECTIONS,
      maxStreamsPerConnection: s.COFFER_MAX_STREAMS_PER_CONNECTION,
      maxBufferedRequestBytes: s.COFFER_MAX_BUFFERED_REQUEST_BYTES,
    },
  };
}

/**
 * Reads and checks the TLS files: the certificate chain parses, the key is
 * the leaf's, the CA bundle parses, and OpenSSL accepts them together, so
 * that a mistake stops the start with a message naming the setting and file
 * rather than failing every handshake later. Messages never quote the files.
 */
function loadTls(
  certFile: string | undefined,
  keyFile: string | undefined,
  caFile: string | undefined,
): TlsConfig | undefined {
  if (certFile === undefined && keyFile === undefined) {
    if (caFile === undefined) return undefined;
    throw invalid([
      "COFFER_TLS_CLIENT_CA: mutual TLS needs TLS: set COFFER_TLS_CERT and COFFER_TLS_KEY as well",
    ]);
  }
  if (certFile === undefined || keyFile === undefined) {
    throw invalid([
      certFile === undefined
        ? "COFFER_TLS_CERT: not set, but COFFER_TLS_KEY is: TLS needs the certificate chain (PEM) and its private key"
        : "COFFER_TLS_KEY: not set, but COFFER_TLS_CERT is: TLS needs the certificate chain and its private key (PEM)",
    ]);
  }
  const problems: string[] = [];
  const cert = readPem("COFFER_TLS_CERT", certFile, problems);
  const key = readPem("COFFER_TLS_KEY", keyFile, problems);
  const chain = cert && parseCertificates("COFFER_TLS_CERT", certFile, cert, problems);
  let clientCa: Buffer | undefined;
  if (caFile !== undefined) {
    clientCa = readPem("COFFER_TLS_CLIENT_CA", caFile, problems);
    if (clientCa) parseCertificates("COFFER_TLS_CLIENT_CA", caFile, clientCa, problems);
  }
  let privateKey: KeyObject | undefined;
  if (key !== undefined) {
    try {
      privateKey = createPrivateKey({ key, format: "pem" });
    } catch {
      problems.push(`COFFER_TLS_KEY: ${keyFile} does not hold an unencrypted PEM private key`);
    }
  }
  const leaf = chain?.[0];
  if (leaf !== undefined && privateKey !== undefined && !leaf.checkPrivateKey(privateKey)) {
    problems.push(
      `COFFER_TLS_KEY: the key in ${keyFile} does not belong to the first certificate in ${certFile}`,
    );
  }
  if (problems.length > 0 || cert === undefined || key === undefined) throw invalid(problems);
  try {
    createSecureContext({ cert, key, ...(clientCa !== undefined && { ca: clientCa }) });
  } catch (err) {
    // OpenSSL's reasons ("ee key too small") name a property, never key material.
    throw invalid([
      `COFFER_TLS_CERT: OpenSSL refuses ${certFile} with ${keyFile}${caFile === undefined ? "" : ` and ${caFile}`} (${(err as Error).message})`,
    ]);
  }
  return { cert, key, ...(clientCa !== undefined && { clientCa }) };
}

function readPem(setting: string, file: string, problems: string[]): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (err) {
    problems.push(
      `${setting}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
    return undefined;
  }
}

const pemCertificate = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function parseCertificates(
  setting: string,
  file: string,
  pem: Buffer,
  problems: string[],
): X509Certificate[] | undefined {
  const blocks = pem.toString("latin1").match(pemCertificate) ?? [];
  if (blocks.length === 0) {
    problems.push(`${setting}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return undefined;
  }
  const certificates: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block));
    } catch {
      problems.push(`${setting}: certificate ${i + 1} in ${file} does not parse`);
      return undefined;
    }
  }
  return certificates;
}

function invalid(problems: string[]): ConfigError {
  return new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
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
