import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration } from "./config.ts";

const fails = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected loadConfig to fail");
};

describe("loadConfig", () => {
  it("defaults to the embedded database, one region and the documented ports", () => {
    const c = loadConfig({});
    expect(c.grpcListen).toEqual({ host: "127.0.0.1", port: 50051 });
    expect(c.httpListen).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(c.regions).toEqual(["local"]);
    expect(c.databases.local).toEqual({
      driver: "pglite",
      dataDir: path.resolve(".coffer/regions/local"),
    });
    expect(c.masterKeyFile).toBe(path.resolve(".coffer/master-keys.json"));
    expect(c.deletionWindowMs).toBe(7 * 86_400_000);
  });

  it("gives each region its own Postgres database through {region}", () => {
    const c = loadConfig({
      COFFER_REGIONS: "fr-par,nl-ams",
      COFFER_DATABASE_URL: "postgres://db/coffer_{region}",
    });
    expect(c.databases["fr-par"]).toMatchObject({
      driver: "postgres",
      url: "postgres://db/coffer_fr_par",
    });
    expect(c.databases["nl-ams"]).toMatchObject({ url: "postgres://db/coffer_nl_ams" });
    expect(c.masterKeyFile).toBeUndefined();
  });

  it("names every bad setting and the rule it breaks", () => {
    const message = fails({
      COFFER_GRPC_LISTEN: "nope",
      COFFER_DELETION_WINDOW: "7x",
      COFFER_REGIONS: "Fr_Par",
      COFFER_LOG_LEVEL: "loud",
    });
    expect(message).toContain("COFFER_GRPC_LISTEN: must be host:port");
    expect(message).toContain("COFFER_DELETION_WINDOW: must be a duration");
    expect(message).toContain("COFFER_REGIONS:");
    expect(message).toContain("COFFER_LOG_LEVEL:");
    expect(fails({ COFFER_DATABASE_URL: "mysql://x" })).toContain("COFFER_DATABASE_URL:");
    expect(fails({ COFFER_REGIONS: "a,b", COFFER_DATABASE_URL: "postgres://db/coffer" })).toContain(
      "COFFER_DATABASE_URL: with several regions it must contain {region}",
    );
  });

  it("reads a JSON config file under the environment", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "coffer-config-"));
    const file = path.join(dir, "coffer.json");
    writeFileSync(
      file,
      JSON.stringify({ COFFER_REGIONS: "fr-par", COFFER_HTTP_LISTEN: "0.0.0.0:9000" }),
    );
    const c = loadConfig({ COFFER_CONFIG_FILE: file, COFFER_HTTP_LISTEN: "127.0.0.1:9001" });
    expect(c.regions).toEqual(["fr-par"]);
    expect(c.httpListen.port).toBe(9001);
    writeFileSync(file, JSON.stringify({ COFFER_REGION: "typo" }));
    expect(fails({ COFFER_CONFIG_FILE: file })).toContain('unknown setting "COFFER_REGION"');
  });

  it("parses durations", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("7d")).toBe(7 * 86_400_000);
    expect(parseDuration("7")).toBeUndefined();
  });
});
