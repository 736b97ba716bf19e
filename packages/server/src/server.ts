import { SecretService } from "@coffer/api";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { type Config, ConfigError } from "./config.ts";
import {
  type KeyRing,
  loadKeyFile,
  loadOrCreateKeyFile,
  parseMasterKeys,
} from "./crypto/key-ring.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { type Domain, Regions } from "./domain/context.ts";
import { startSweeper } from "./domain/sweeper.ts";
import { withCallChain } from "./rpc/chain.ts";
import { secretService } from "./rpc/secret-service.ts";
import { listenConnect } from "./rpc/transports/connect-node.ts";
import { addService } from "./rpc/transports/grpc-js.ts";

/**
 * The largest request either server reads: a 64 KiB payload, base64-encoded
 * in Connect JSON, plus every other field, fits with room to spare; anything
 * larger is refused before it is buffered whole.
 */
const MAX_REQUEST_BYTES = 512 * 1024;

export interface RunningServer {
  grpcPort: number;
  httpPort: number;
  domain: Domain;
  /** Stops accepting calls, lets calls in flight finish (up to the grace period), closes databases. */
  stop(): Promise<void>;
}

/**
 * Starts Coffer: opens and migrates each region's database, loads the key
 * ring, and serves SecretService over gRPC (grpc-js) and over Connect and
 * gRPC-Web (connect-node, HTTP/1.1 and cleartext HTTP/2 on one port).
 */
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const keyRing = await loadKeyRing(config, logger);
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
  } catch (err) {
    await Promise.all([...databases.values()].map((d) => d.close()));
    throw err;
  }
  const domain: Domain = {
    regions: new Regions(databases),
    keyRing: () => keyRing,
    deletionWindowMs: config.deletionWindowMs,
  };
  const impl = withCallChain(SecretService, secretService(domain), logger);
  const shutdown = new AbortController();

  const http = await listenConnect(SecretService, impl, config.httpListen, {
    readMaxBytes: MAX_REQUEST_BYTES,
    shutdownSignal: shutdown.signal,
  });

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
  });
  addService(grpcServer, SecretService, impl, { shutdownSignal: shutdown.signal });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(
      `${config.grpcListen.host.includes(":") ? `[${config.grpcListen.host}]` : config.grpcListen.host}:${config.grpcListen.port}`,
      grpc.ServerCredentials.createInsecure(),
      (err, port) => (err ? reject(err) : resolve(port)),
    ),
  ).catch(async (err) => {
    http.destroy();
    await Promise.all([...databases.values()].map((d) => d.close()));
    throw err;
  });

  const stopSweeper = startSweeper(
    domain,
    config.sweepIntervalMs,
    (region, err) => logger.warn({ region, err }, "sweep failed; will retry"),
    (region, counts) => {
      if (counts.expired + counts.versionsDestroyed + counts.secretsDestroyed > 0) {
        logger.info({ region, ...counts }, "swept");
      }
    },
  );
  const httpPort = http.port;
  logger.info(
    {
      grpc: `${config.grpcListen.host}:${grpcPort}`,
      http: `${config.httpListen.host}:${httpPort}`,
      regions: config.regions,
    },
    "coffer is serving",
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const grace = setTimeout(() => {
        shutdown.abort();
        grpcServer.forceShutdown();
        http.destroy();
      }, config.shutdownGraceMs);
      const httpClosed = http.close();
      const grpcClosed = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      await Promise.all([httpClosed, grpcClosed]);
      clearTimeout(grace);
      await stopSweeper();
      await Promise.all([...databases.values()].map((d) => d.close()));
      logger.info("stopped");
    })();
    return stopping;
  };
  return { grpcPort, httpPort, domain, stop };
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
