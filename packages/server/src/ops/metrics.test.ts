import { readFileSync } from "node:fs";
import { AdminService, SecretService } from "@coffer/api";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../config.ts";
import { generateToken } from "../crypto/tokens.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

const CREATE_PROJECT = "coffer.admin.v1.AdminService/CreateProject";
const GET_SECRET = "coffer.secretmanager.v1.SecretService/GetSecret";
const CREATE_SECRET = "coffer.secretmanager.v1.SecretService/CreateSecret";

/** The value of one sample, e.g. `coffer_rpc_calls_total{method="...",code="OK"}`; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

const auth =
  (token: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };

describe.each(serverBackends)("Prometheus metrics on $name", (backend) => {
  let s: TestServer;
  let scrape: () => Promise<string>;
  let base: string;
  beforeAll(async () => {
    s = await backend.start({
      metricsListen: { host: "127.0.0.1", port: 0 },
      healthIntervalMs: 100,
    });
    base = `http://127.0.0.1:${s.server.metricsPort}`;
    scrape = async () => {
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      return res.text();
    };
  }, 120_000);
  afterAll(() => s?.stop());

  it("counts calls by method and code, times them, and never labels a token, a path or a payload", async () => {
    const transport = createConnectTransport({
      baseUrl: `http://127.0.0.1:${s.server.httpPort}`,
      httpVersion: "1.1",
      interceptors: [auth(s.adminToken)],
    });
    const admin = createClient(AdminService, transport);
    // gRPC calls through grpc-js count in the same series.
    const secrets = createClient(
      SecretService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${s.server.grpcPort}`,
        interceptors: [auth(s.adminToken)],
      }),
    );
    const before = await scrape();

    const projects = [];
    for (let i = 0; i < 3; i++) {
      projects.push((await admin.createProject({ name: `metrics-project-${i}` })).project?.id);
    }
    const projectId = projects[0] ?? "";
    const canary = `payload-canary-${generateToken().value.slice(7, 20)}`;
    await secrets.createSecret({
      projectId,
      path: "/metrics-leak-check/deep",
      name: "canary-secret-name",
      firstVersion: { data: new TextEncoder().encode(canary) },
    });
    const missing = await secrets
      .getSecret({ secretId: "7c9e6679-7425-40de-944b-e07fc1f90ae7" })
      .catch(ConnectError.from);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    const stranger = generateToken().value;
    const denied = await createClient(
      SecretService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${s.server.httpPort}`,
        httpVersion: "1.1",
        interceptors: [auth(stranger)],
      }),
    )
      .getSecret({ secretId: "7c9e6679-7425-40de-944b-e07fc1f90ae7" })
      .catch(ConnectError.from);
    expect((denied as ConnectError).code).toBe(Code.Unauthenticated);

    const after = await scrape();
    const calls = (text: string, method: string, code: string) =>
      sample(text, "coffer_rpc_calls_total", { method, code });
    expect(calls(after, CREATE_PROJECT, "OK") - calls(before, CREATE_PROJECT, "OK")).toBe(3);
    expect(calls(after, CREATE_SECRET, "OK") - calls(before, CREATE_SECRET, "OK")).toBe(1);
    expect(calls(after, GET_SECRET, "NOT_FOUND") - calls(before, GET_SECRET, "NOT_FOUND")).toBe(1);
    expect(
      calls(after, GET_SECRET, "UNAUTHENTICATED") - calls(before, GET_SECRET, "UNAUTHENTICATED"),
    ).toBe(1);
    const count = (text: string) =>
      sample(text, "coffer_rpc_call_duration_seconds_count", { method: CREATE_PROJECT });
    expect(count(after) - count(before)).toBe(3);
    expect(
      sample(after, "coffer_rpc_call_duration_seconds_bucket", {
        method: CREATE_PROJECT,
        le: "+Inf",
      }),
    ).toBe(count(after));

    for (const leak of [
      s.adminToken,
      s.adminToken.slice(0, 16),
      stranger.slice(0, 16),
      canary,
      "metrics-leak-check",
      "canary-secret-name",
      "metrics-project-",
      projectId,
      "Bearer",
    ]) {
      expect(after, `the scrape shows ${leak}`).not.toContain(leak);
    }
    // Coffer's own series carry only these labels.
    const labelNames = new Set(
      after
        .split("\n")
        .filter((l) => l.startsWith("coffer_"))
        .flatMap((l) => [...l.matchAll(/[{,]([a-zA-Z_]+)="/g)].map((m) => m[1])),
    );
    expect([...labelNames].sort()).toEqual([
      "code",
      "commit",
      "driver",
      "le",
      "method",
      "region",
      "version",
    ]);
  });

  it("shows the size of each access batch and how long its calls queued", async () => {
    const grpc = createGrpcTransport({
      baseUrl: `http://127.0.0.1:${s.server.grpcPort}`,
      interceptors: [auth(s.adminToken)],
    });
    const admin = createClient(AdminService, grpc);
    const secrets = createClient(SecretService, grpc);
    const { project } = await admin.createProject({ name: "batched" });
    const { secret } = await secrets.createSecret({
      projectId: project?.id ?? "",
      name: "batched",
      firstVersion: { data: new TextEncoder().encode("batched payload") },
    });
    const secretId = secret?.id ?? "";
    const before = await scrape();
    const count = (text: string, name: string) =>
      sample(text, `${name}_count`, { region: "local" });
    await Promise.all(
      Array.from({ length: 40 }, () => secrets.accessSecretVersion({ secretId, revision: "1" })),
    );
    const after = await scrape();
    const batches =
      count(after, "coffer_access_batch_size") - count(before, "coffer_access_batch_size");
    const served =
      sample(after, "coffer_access_batch_size_sum", { region: "local" }) -
      sample(before, "coffer_access_batch_size_sum", { region: "local" });
    expect(served).toBe(40);
    // Calls that arrive together share batches, on PGlite too.
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThan(40);
    expect(
      count(after, "coffer_access_queue_wait_seconds") -
        count(before, "coffer_access_queue_wait_seconds"),
    ).toBe(40);
  });

  it("shows the size of each create batch and how long its creates queued", async () => {
    const grpc = createGrpcTransport({
      baseUrl: `http://127.0.0.1:${s.server.grpcPort}`,
      interceptors: [auth(s.adminToken)],
    });
    const admin = createClient(AdminService, grpc);
    const secrets = createClient(SecretService, grpc);
    const { project } = await admin.createProject({ name: "batched-creates" });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { secret } = await secrets.createSecret({
        projectId: project?.id ?? "",
        name: `created-${i}`,
      });
      ids.push(secret?.id ?? "");
    }
    const before = await scrape();
    const count = (text: string, name: string) =>
      sample(text, `${name}_count`, { region: "local" });
    // One create per secret: a batch takes at most one create of a secret.
    await Promise.all(
      ids.map((secretId) =>
        secrets.createSecretVersion({ secretId, data: new TextEncoder().encode("v1") }),
      ),
    );
    const after = await scrape();
    const batches =
      count(after, "coffer_create_batch_size") - count(before, "coffer_create_batch_size");
    expect(
      sample(after, "coffer_create_batch_size_sum", { region: "local" }) -
        sample(before, "coffer_create_batch_size_sum", { region: "local" }),
    ).toBe(20);
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThan(20);
    expect(
      count(after, "coffer_create_queue_wait_seconds") -
        count(before, "coffer_create_queue_wait_seconds"),
    ).toBe(20);
  });

  it("reports the version and the commit in coffer_build_info", async () => {
    const { version } = JSON.parse(
      readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
    ) as { version: string };
    // Run from src/ (tests), the commit is "source"; a build writes its commit.
    expect(sample(await scrape(), "coffer_build_info", { version, commit: "source" })).toBe(1);
  });

  it("shows open watch streams, each region's database and pool, and process metrics", async () => {
    const { project } = await createClient(
      AdminService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${s.server.httpPort}`,
        httpVersion: "1.1",
        interceptors: [auth(s.adminToken)],
      }),
    ).createProject({ name: "watched" });
    const secrets = createClient(
      SecretService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${s.server.grpcPort}`,
        interceptors: [auth(s.adminToken)],
      }),
    );
    expect(sample(await scrape(), "coffer_watch_streams")).toBe(0);
    const abort = new AbortController();
    const stream = secrets.watchSecrets({ projectId: project?.id ?? "" }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next(); // the first heartbeat: the stream is established
    expect(sample(await scrape(), "coffer_watch_streams")).toBe(1);
    abort.abort();
    await iterator.next().catch(() => {});
    const deadline = Date.now() + 10_000;
    while (sample(await scrape(), "coffer_watch_streams") !== 0) {
      if (Date.now() > deadline) throw new Error("the watch stream gauge never went back to 0");
      await new Promise((r) => setTimeout(r, 50));
    }

    const text = await scrape();
    expect(sample(text, "coffer_database_up", { region: "local" })).toBe(1);
    expect(sample(text, "coffer_database_ping_seconds", { region: "local" })).toBeGreaterThan(0);
    expect(
      sample(text, "coffer_database_pool_max_connections", {
        region: "local",
        driver: backend.name,
      }),
    ).toBe(backend.name === "postgres" ? 5 : 1);
    expect(sample(text, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
  });

  it("serves only GET /metrics, and only on its own address, never on the API port", async () => {
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
    const onApiPort = await fetch(`http://127.0.0.1:${s.server.httpPort}/metrics`);
    expect(onApiPort.status).toBe(404);
    expect(await onApiPort.text()).not.toContain("coffer_rpc_calls_total");
  });
});

describe("metrics and health settings", () => {
  it("serve no metrics unless COFFER_METRICS_LISTEN is set, and ping every 5 s by default", () => {
    const c = loadConfig({});
    expect(c.metricsListen).toBeUndefined();
    expect(c.healthIntervalMs).toBe(5_000);
    const set = loadConfig({ COFFER_METRICS_LISTEN: "0.0.0.0:9464", COFFER_HEALTH_INTERVAL: "2s" });
    expect(set.metricsListen).toEqual({ host: "0.0.0.0", port: 9464 });
    expect(set.healthIntervalMs).toBe(2_000);
  });

  it("name the setting when a value is wrong", () => {
    expect(() => loadConfig({ COFFER_METRICS_LISTEN: "9464" })).toThrow(ConfigError);
    expect(() => loadConfig({ COFFER_METRICS_LISTEN: "9464" })).toThrow(/COFFER_METRICS_LISTEN/);
    expect(() => loadConfig({ COFFER_HEALTH_INTERVAL: "10ms" })).toThrow(/COFFER_HEALTH_INTERVAL/);
  });
});
