import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import {
  type Config,
  ConfigError,
  DEFAULT_ACCESS_BATCH_MAX,
  DEFAULT_WATCH_STREAMS_PER_TOKEN,
} from "./config.ts";
import { consoleHandler, type FallbackHandler } from "./console/serve-console.ts";
import { BUILD_HINT, type ConsoleSite, installedConsoleDir, loadConsole } from "./console/site.ts";
import {
  type KeyRing,
  loadKeyFile,
  loadOrCreateKeyFile,
  parseMasterKeys,
} from "./crypto/key-ring.ts";
import { KeyRingHolder } from "./crypto/key-ring-holder.ts";
import { AccessQueues } from "./db/access-queue.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { bootstrapAdminToken } from "./domain/admin/bootstrap.ts";
import { openAuditLog } from "./domain/audit-log.ts";
import { Authenticator } from "./domain/authenticate.ts";
import { type DomainDeps, Regions } from "./domain/context.ts";
import { DeniedCalls } from "./domain/denied-calls.ts";
import type { RingSource } from "./domain/rotate-keys.ts";
import { startSweeper } from "./domain/sweeper.ts";
import { HealthStatus, REGION_PREFIX, startDatabaseProbe } from "./ops/health.ts";
import { listenMetrics, Metrics, type MetricsServer } from "./ops/metrics.ts";
import { type CallObserver, codeName } from "./rpc/chain.ts";
import { PeerLimiter } from "./rpc/peer-limit.ts";
import { RateLimiter } from "./rpc/rate-limit.ts";
import { buildServices, chainedServices, type Services } from "./rpc/services.ts";
import { listenConnect } from "./rpc/transports/connect-node.ts";
import { listenGrpc } from "./rpc/transports/grpc-js.ts";
import { type ListenOptions, RequestBudget } from "./rpc/transports/limits.ts";
import { SCALEWAY_NAMESPACE, scalewayHandler } from "./scaleway/serve.ts";
import { WatchFeeds } from "./watch/feed.ts";
import { TokenStreams } from "./watch/token-streams.ts";

/**
 * The largest request either server reads: a 64 KiB payload, base64-encoded
 * in Connect JSON, plus every other field, fits with room to spare; anything
 * larger is refused before it is buffered whole.
 */
const MAX_REQUEST_BYTES = 512 * 1024;

/** What tests and commands reach into on a server, whether it listens or not. */
export interface ServerParts {
  domain: DomainDeps;
  /** The running key ring, and the key file an online rotation adds keys to. */
  keys: RingSource;
  /** Each region's watch fan-out. */
  feeds: WatchFeeds;
  /** Turns bearer tokens into principals (its lookup count is read by tests). */
  authenticator: Authenticator;
}

export interface RunningServer extends ServerParts {
  grpcPort: number;
  httpPort: number;
  /** The port of `GET /metrics`, when `COFFER_METRICS_LISTEN` is set. */
  metricsPort?: number;
  /** Stops accepting calls, lets calls in flight finish (up to the grace period), closes databases. */
  stop(): Promise<void>;
}

/** The transports of a server, as its stop sequence handles them. */
export interface Listeners {
  /** Refuses new calls (grpc-js's drain), synchronously. */
  drain(): void;
  /** Resolves when every transport has closed, calls in flight done. */
  close(): Promise<void>;
}

/** A server short of its ports: everything opened and started, the services built. */
export interface OpenServer extends ServerParts {
  /** What every transport serves (connect's `routes(services)`, grpc-js's `served`). */
  services: Services;
  /** The metrics the services record into, when `COFFER_METRICS_LISTEN` is set. */
  metrics: Metrics | undefined;
  /**
   * Stops: health NOT_SERVING, watch streams ended, then `listeners` closed
   * (once, whoever calls first), then the sweeper, the database probe, the
   * counts of refused calls, the databases and the audit log.
   */
  stop(listeners?: Listeners): Promise<void>;
}

/**
 * The web console, when `COFFER_CONSOLE` is on: read into memory once here.
 * A console that is not built is not fatal (the API needs none): it is said
 * once, and `/` answers 503 saying what to run.
 */
function openConsole(config: Config, logger: Logger): ConsoleSite | undefined {
  if (config.console === undefined) return undefined;
  const site = loadConsole(config.console.dir ?? installedConsoleDir());
  if (!site.built) {
    logger.warn(
      { dir: site.dir, reason: site.reason },
      `the web console is not built: ${BUILD_HINT} (or set COFFER_CONSOLE=off)`,
    );
  }
  return site;
}

/**
 * What the HTTP port serves besides the RPCs: the Scaleway-compatible REST
 * API under SCALEWAY_NAMESPACE, then the web console (when on); anything else
 * is connect's empty 404.
 */
function besideRpcs(
  services: Services,
  logger: Logger,
  site: ConsoleSite | undefined,
): FallbackHandler {
  const scaleway = scalewayHandler(services.secret, { logger, readMaxBytes: MAX_REQUEST_BYTES });
  const console = site && consoleHandler(site);
  return (req, res) => {
    if (req.url?.startsWith(SCALEWAY_NAMESPACE)) {
      scaleway(req, res);
    } else if (console !== undefined) {
      console(req, res);
    } else {
      res.writeHead(404);
      res.end();
    }
  };
}

/** Where a browser opens the console (a wildcard address is reached on the loopback). */
function consoleUrl(config: Config, port: number): string {
  const { host } = config.httpListen;
  const reach = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  const shown = reach.includes(":") ? `[${reach}]` : reach;
  return `${config.tls === undefined ? "http" : "https"}://${shown}:${port}/`;
}

/** How often each region's database is pinged when the configuration does not say. */
const DEFAULT_HEALTH_INTERVAL_MS = 5_000;

/**
 * Starts Coffer: opens the server (openServer), and serves SecretService and
 * AdminService over gRPC (grpc-js) and over Connect and gRPC-Web
 * (connect-node, HTTP/1.1 and cleartext HTTP/2 on one port), with
 * grpc.health.v1 on both ports, server reflection on the gRPC port, and
 * Prometheus metrics on `COFFER_METRICS_LISTEN` when it is set.
 */
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const open = await openServer(config, logger);
  const { services, metrics } = open;
  const shutdown = new AbortController();
  // Every call in flight listens for shutdown: that is not a leak.
  setMaxListeners(0, shutdown.signal);

  // One budget for both ports: together they are the process's memory.
  const listenOptions: ListenOptions = {
    readMaxBytes: MAX_REQUEST_BYTES,
    shutdownSignal: shutdown.signal,
    tls: config.tls,
    limits: config.connections,
    budget: new RequestBudget(config.connections.maxBufferedRequestBytes),
  };
  const site = openConsole(config, logger);
  const http = await listenConnect(
    services,
    config.httpListen,
    listenOptions,
    besideRpcs(services, logger, site),
  ).catch(async (err) => {
    await open.stop();
    throw err;
  });
  const grpcServer = await listenGrpc(services, config.grpcListen, listenOptions).catch(
    async (err) => {
      http.destroy();
      await open.stop();
      throw err;
    },
  );
  const grpcPort = grpcServer.port;
  let metricsServer: MetricsServer | undefined;
  if (metrics !== undefined && config.metricsListen !== undefined) {
    metricsServer = await listenMetrics(metrics, config.metricsListen).catch(async (err) => {
      http.destroy();
      grpcServer.destroy();
      await open.stop();
      throw err;
    });
  }

  const httpPort = http.port;
  logger.info(
    {
      grpc: `${config.grpcListen.host}:${grpcPort}`,
      http: `${config.httpListen.host}:${httpPort}`,
      metrics:
        metricsServer === undefined
          ? "off"
          : `${config.metricsListen?.host}:${metricsServer.port}/metrics`,
      regions: config.regions,
      tls: config.tls === undefined ? "off" : config.tls.clientCa ? "mutual" : "on",
      console:
        site === undefined ? "off" : site.built ? consoleUrl(config, httpPort) : "not built (503)",
    },
    "coffer is serving",
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const grace = setTimeout(() => {
        shutdown.abort();
        grpcServer.destroy();
        http.destroy();
      }, config.shutdownGraceMs);
      await open.stop({
        drain: () => grpcServer.drain(),
        close: async () => {
          await Promise.all([http.close(), grpcServer.close()]);
          clearTimeout(grace);
        },
      });
      await metricsServer?.close();
      logger.info("stopped");
    })();
    return stopping;
  };
  return {
    grpcPort,
    httpPort,
    ...(metricsServer !== undefined && { metricsPort: metricsServer.port }),
    domain: open.domain,
    keys: open.keys,
    feeds: open.feeds,
    authenticator: open.authenticator,
    stop,
  };
}

/**
 * Opens Coffer short of its ports: opens and migrates each region's
 * database, loads the key ring, creates the bootstrap admin token on an
 * empty database, starts the watch feeds, the database probe and the
 * sweeper, and builds the services. startServer listens on them; tests that
 * need no port call them in memory (testing/in-memory-server.ts).
 */
export async function openServer(config: Config, logger: Logger): Promise<OpenServer> {
  const keys: RingSource = {
    holder: new KeyRingHolder(await loadKeyRing(config, logger)),
    keyFile: rotatableKeyFile(config),
  };
  const databases = new Map<string, Database>();
  try {
    for (const region of config.regions) {
      const target = config.databases[region];
      if (target === undefined) throw new Error(`no database configured for region ${region}`);
      const database = await openDatabase(target);
      databases.set(region, database);
      const applied = await migrate(database.db);
      logger.info(
        { region, driver: database.driver, migrations_applied: applied },
        "database ready",
      );
    }
    // Tokens live in the home (first) region's database.
    const [home] = databases.values();
    if (home !== undefined) {
      const created = await bootstrapAdminToken(home.db, {
        ...(config.bootstrapToken !== undefined && { fromEnv: config.bootstrapToken }),
      });
      if (created !== undefined) announceAdminToken(created, config, logger);
    }
  } catch (err) {
    await Promise.all([...databases.values()].map((d) => d.close()));
    throw err;
  }
  const regions = new Regions(databases);
  // Tokens live in the home (first) region's database.
  const authenticator = new Authenticator(() => regions.resolve("").db);
  const homeDatabase = regions.all()[0]?.database as Database;
  const feeds = await TokenStreams.start(homeDatabase, {
    maxPerToken: config.watchStreamsPerToken ?? DEFAULT_WATCH_STREAMS_PER_TOKEN,
    cache: authenticator,
    logger,
  })
    .then((tokens) => WatchFeeds.start(regions.all(), logger, tokens))
    .catch(async (err) => {
      await Promise.all([...databases.values()].map((d) => d.close()));
      throw err;
    });
  const metrics =
    config.metricsListen === undefined
      ? undefined
      : new Metrics({
          regions: config.regions.map((name) => {
            const target = config.databases[name];
            return target?.driver === "postgres"
              ? { name, driver: "postgres", poolSize: target.poolSize }
              : { name, driver: "pglite", poolSize: 1 };
          }),
          watchStreams: () => feeds.streams,
        });
  const domain: DomainDeps = {
    regions,
    announce: (region) => feeds.announce(region),
    keyRing: keys.holder.get,
    deletionWindowMs: config.deletionWindowMs,
    watchRetentionMs: config.watchRetentionMs,
    ...(config.auditRetentionMs !== undefined && { auditRetentionMs: config.auditRetentionMs }),
    limits: config.limits,
    accessQueues: new AccessQueues({
      max: config.accessBatchMax ?? DEFAULT_ACCESS_BATCH_MAX,
      ...(metrics !== undefined && {
        onBatch: (region, size, waits) => metrics.observeAccessBatch(region, size, waits),
      }),
    }),
    ...(metrics !== undefined && {
      onCreateBatch: (region, size, waits) => metrics.observeCreateBatch(region, size, waits),
    }),
  };

  const health = new HealthStatus(
    config.regions,
    chainedServices.map((s) => s.typeName),
  );
  let probed = false;
  const probe = await startDatabaseProbe(
    regions.all(),
    config.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
    (result) => {
      const name = REGION_PREFIX + result.region;
      const before = health.get(name);
      health.setRegion(result.region, result.up);
      metrics?.observeProbe(result);
      if (probed && health.get(name) !== before) {
        if (result.up) logger.info({ region: result.region }, "database answers again: SERVING");
        else logger.warn({ region: result.region }, "database does not answer: NOT_SERVING");
      }
    },
  );
  probed = true;

  const auditLog = config.auditLog === undefined ? undefined : openAuditLog(config.auditLog);
  const observe: CallObserver | undefined =
    metrics && ((call) => metrics.observeCall(call.method, codeName(call.code), call.durationMs));
  const rps = config.limits.requestsPerSecond;
  const peerRps = config.peerRateLimitRps ?? 0;
  const deniedCalls = new DeniedCalls(domain, { logger, ...(auditLog && { auditLog }) });
  const services = buildServices({
    logger,
    domain,
    feeds,
    authenticator,
    keys,
    health,
    deniedCalls,
    auditLog,
    rateLimiter: rps > 0 ? new RateLimiter({ ratePerSecond: rps }) : undefined,
    peerLimiter: peerRps > 0 ? new PeerLimiter({ ratePerSecond: peerRps }) : undefined,
    observe,
    jwks: {
      onFetchFailed: (issuer, reason) =>
        logger.warn(
          { issuer_id: issuer.id, issuer: issuer.issuerUrl, reason },
          "a trusted issuer's keys could not be fetched; its tokens are refused until they can",
        ),
      ...(config.jwksMaxAgeMs !== undefined && { maxAgeMs: config.jwksMaxAgeMs }),
      ...(config.jwksRefreshFloorMs !== undefined && { refreshFloorMs: config.jwksRefreshFloorMs }),
    },
  });

  const stopSweeper = startSweeper(
    domain,
    config.sweepIntervalMs,
    (region, err) => logger.warn({ region, err }, "sweep failed; will retry"),
    (region, counts) => {
      const { expired, versionsDestroyed, secretsDestroyed, auditEventsPruned } = counts;
      const total = expired + versionsDestroyed + secretsDestroyed + auditEventsPruned;
      if (total + counts.exchangedTokensPruned > 0) {
        logger.info({ region, ...counts }, "swept");
      }
    },
  );

  let stopping: Promise<void> | undefined;
  const stop = (listeners?: Listeners) => {
    stopping ??= (async () => {
      // Health first: probes and load balancers see NOT_SERVING and steer
      // new calls elsewhere; health watches get it, then end (UNAVAILABLE),
      // and so do reflection streams, so none of them holds the drain.
      health.shutdown();
      listeners?.drain();
      const probeStopped = probe.stop();
      // Watch streams never end on their own: end them first (UNAVAILABLE),
      // so that agents reconnect to another replica while this one drains.
      await feeds.close();
      await listeners?.close();
      await stopSweeper();
      await probeStopped;
      await deniedCalls
        .close()
        .catch((err: unknown) =>
          logger.warn({ err }, "counts of refused calls could not be written"),
        );
      await Promise.all([...databases.values()].map((d) => d.close()));
      await auditLog?.close();
    })();
    return stopping;
  };
  return { domain, keys, feeds, authenticator, services, metrics, stop };
}

/**
 * The key ring: `COFFER_MASTER_KEYS` when set; else the key file. On the
 * embedded database a missing key file is created (mode 0600) on first
 * start; on Postgres it must already exist, since a key made on one replica's
 * disk would leave the others unable to decrypt.
 */
async function loadKeyRing(config: Config, logger: Logger): Promise<KeyRing> {
  if (config.masterKeys !== undefined) return parseMasterKeys(config.masterKeys);
  const embedded = Object.values(config.databases).every((d) => d.driver === "pglite");
  if (config.masterKeyFile === undefined) {
    throw new ConfigError(
      "no master key: with Postgres, set COFFER_MASTER_KEYS (id:base64 of 32 random bytes, e.g. k1:$(openssl rand -base64 32)) or COFFER_MASTER_KEY_FILE",
    );
  }
  if (!embedded) return loadKeyFile(config.masterKeyFile);
  const ring = await loadOrCreateKeyFile(config.masterKeyFile);
  logger.info(
    { key_file: config.masterKeyFile, active_key: ring.activeId },
    "master key ring loaded",
  );
  return ring;
}

/**
 * The key file an online rotation may add a key to: only the embedded
 * database's, which one process serves alone. With Postgres, a key added to
 * one replica's file would be missing from the others' rings.
 */
function rotatableKeyFile(config: Config): string | undefined {
  const embedded = Object.values(config.databases).every((d) => d.driver === "pglite");
  return config.masterKeys === undefined && embedded ? config.masterKeyFile : undefined;
}

/**
 * Shows the admin token made on first start: printed once to stderr in a
 * framed block, outside the JSON log, so that log shippers never carry it.
 * A token given by COFFER_BOOTSTRAP_TOKEN is not echoed: its owner has it.
 */
function announceAdminToken(value: string, config: Config, logger: Logger): void {
  if (config.bootstrapToken !== undefined) {
    logger.info("created the admin token given by COFFER_BOOTSTRAP_TOKEN");
    return;
  }
  logger.info("created an admin token (printed once to stderr)");
  const rule = "=".repeat(72);
  // stderr only, never the JSON log: logs are shipped and kept. The token is
  // coffer_ and base62, so the export line needs no shell quoting.
  process.stderr.write(
    `\n${rule}\nCoffer created an admin token. It is shown this once; store it now:\n  ${value}\n\nTo use it from a shell (the CLI and the examples read COFFER_TOKEN):\n  export COFFER_TOKEN=${value}\n${rule}\n\n`,
  );
}
