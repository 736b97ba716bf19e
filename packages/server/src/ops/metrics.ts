import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { buildInfo } from "../build-info.ts";
import type { ProbeResult } from "./health.ts";

/** What the metrics read from the rest of the server, at scrape time. */
export interface MetricsSources {
  /** Each region's database: its driver, and its pool size (PGlite is one connection). */
  regions: readonly { name: string; driver: "postgres" | "pglite"; poolSize: number }[];
  /** Open watch streams on this replica, across regions. */
  watchStreams: () => number;
}

/**
 * The server's Prometheus metrics, in a registry of its own (no global
 * state, so that several servers can run in one process). Labels are only
 * ever a method name (`<package>.<Service>/<Method>`, a fixed set), a gRPC
 * code name, a region or a driver: never a token, a secret's path or a
 * payload, and nothing a caller chooses.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly calls: Counter<"method" | "code">;
  private readonly latency: Histogram<"method">;
  private readonly databaseUp: Gauge<"region">;
  private readonly pingSeconds: Gauge<"region">;
  private readonly accessBatchSize: Histogram<"region">;
  private readonly createBatchSize: Histogram<"region">;
  private readonly createQueueWait: Histogram<"region">;
  private readonly accessQueueWait: Histogram<"region">;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const build = buildInfo();
    new Gauge({
      name: "coffer_build_info",
      help: "Always 1: the server's version and the commit it was built from, as labels.",
      labelNames: ["version", "commit"],
      registers,
    }).set({ version: build.version, commit: build.commit }, 1);
    this.calls = new Counter({
      name: "coffer_rpc_calls_total",
      help: "Finished RPCs (SecretService, AdminService), by method and gRPC status code.",
      labelNames: ["method", "code"],
      registers,
    });
    this.latency = new Histogram({
      name: "coffer_rpc_call_duration_seconds",
      help: "RPC latency by method; for a stream, the time until it is established (its first message).",
      labelNames: ["method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    new Gauge({
      name: "coffer_watch_streams",
      help: "Open WatchSecrets streams on this replica, catching up or live.",
      registers,
      collect() {
        this.set(sources.watchStreams());
      },
    });
    this.databaseUp = new Gauge({
      name: "coffer_database_up",
      help: "1 when the region's database answered its last health ping, else 0.",
      labelNames: ["region"],
      registers,
    });
    this.pingSeconds = new Gauge({
      name: "coffer_database_ping_seconds",
      help: "How long the region's last health ping (select 1) took, up to its 3 s timeout.",
      labelNames: ["region"],
      registers,
    });
    this.accessBatchSize = new Histogram({
      name: "coffer_access_batch_size",
      help: "Accesses served by one statement and one commit (group commit; COFFER_ACCESS_BATCH_MAX caps it), by region.",
      labelNames: ["region"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.accessQueueWait = new Histogram({
      name: "coffer_access_queue_wait_seconds",
      help: "How long an access waited in its region's queue for its batch to start, by region.",
      labelNames: ["region"],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.createBatchSize = new Histogram({
      name: "coffer_create_batch_size",
      help: "Version creates written by one transaction (group commit, at most 64), by region.",
      labelNames: ["region"],
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.createQueueWait = new Histogram({
      name: "coffer_create_queue_wait_seconds",
      help: "How long a version create waited in its region's queue for its batch to start, by region.",
      labelNames: ["region"],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    const poolMax = new Gauge({
      name: "coffer_database_pool_max_connections",
      help: "Connections the region's pool may open (COFFER_DATABASE_POOL_SIZE; 1 for embedded PGlite).",
      labelNames: ["region", "driver"],
      registers,
    });
    for (const r of sources.regions) {
      poolMax.set({ region: r.name, driver: r.driver }, r.poolSize);
    }
  }

  /** Feeds the call chain's `observe` hook: one finished call. */
  observeCall(method: string, code: string, durationMs: number): void {
    this.calls.inc({ method, code });
    this.latency.observe({ method }, durationMs / 1000);
  }

  /** Feeds the access queues (db/access-queue.ts): one batch, and how long each of its calls waited. */
  observeAccessBatch(region: string, size: number, waitsSeconds: readonly number[]): void {
    this.accessBatchSize.observe({ region }, size);
    for (const wait of waitsSeconds) this.accessQueueWait.observe({ region }, wait);
  }

  /** Feeds the create queues (domain/create-batch.ts): one batch, and how long each of its creates waited. */
  observeCreateBatch(region: string, size: number, waitsSeconds: readonly number[]): void {
    this.createBatchSize.observe({ region }, size);
    for (const wait of waitsSeconds) this.createQueueWait.observe({ region }, wait);
  }

  /** Feeds the database probe: one ping's result. */
  observeProbe(result: ProbeResult): void {
    this.databaseUp.set({ region: result.region }, result.up ? 1 : 0);
    this.pingSeconds.set({ region: result.region }, result.seconds);
  }
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on an address of its own,
 * in cleartext and without a token: it is meant for a private interface that
 * only the scraper reaches, never the public API port. Anything else is 404.
 */
export async function listenMetrics(
  metrics: Metrics,
  address: { host: string; port: number },
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics unavailable\n"),
    );
  });
  // A scraper keeps its connection alive between scrapes: do not let it hold shutdown.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
