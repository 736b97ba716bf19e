import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect, resolveSettings } from "./connection.ts";
import { CliError, UsageError } from "./errors.ts";
import { memoryContext } from "./test-io.ts";

let dir = "";
let file = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-conn-"));
  file = path.join(dir, "config.json");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const PROFILE = {
  profiles: {
    default: {
      url: "http://profile:1",
      token: "tok-profile",
      project: "p-profile",
      protocol: "grpc-web",
    },
    other: { url: "http://other:2", token: "tok-other" },
  },
};

describe("resolveSettings", () => {
  it("signs in with a JWT file: --jwt-file first, then COFFER_TOKEN, then COFFER_JWT_FILE, then the profile", async () => {
    await writeFile(file, JSON.stringify(PROFILE), { mode: 0o600 });
    const settings = (env: NodeJS.ProcessEnv, flag?: string) =>
      resolveSettings(memoryContext({ env: { COFFER_CONFIG: file, ...env } }), {
        ...(flag !== undefined && { "jwt-file": flag }),
      });
    expect(await settings({ COFFER_JWT_FILE: "/ci/oidc" })).toMatchObject({
      token: undefined,
      jwtFile: "/ci/oidc",
    });
    expect(await settings({ COFFER_JWT_FILE: "/ci/oidc", COFFER_TOKEN: "tok-env" })).toMatchObject({
      token: "tok-env",
      jwtFile: undefined,
    });
    expect(await settings({ COFFER_TOKEN: "tok-env" }, "/flag/jwt")).toMatchObject({
      token: undefined,
      jwtFile: "/flag/jwt",
    });
    expect(await settings({})).toMatchObject({ token: "tok-profile", jwtFile: undefined });
  });

  it("takes each setting from its flag, else its variable, else the profile, else the default", async () => {
    await writeFile(file, JSON.stringify(PROFILE), { mode: 0o600 });
    const fromProfile = await resolveSettings(memoryContext({ env: { COFFER_CONFIG: file } }), {});
    expect(fromProfile).toMatchObject({
      url: "http://profile:1",
      token: "tok-profile",
      project: "p-profile",
      protocol: "grpc-web",
      region: "",
      timeoutMs: 30_000,
    });
    const fromEnv = await resolveSettings(
      memoryContext({
        env: {
          COFFER_CONFIG: file,
          COFFER_URL: "http://env:3",
          COFFER_TOKEN: "tok-env",
          COFFER_PROJECT: "p-env",
        },
      }),
      {},
    );
    expect(fromEnv).toMatchObject({ url: "http://env:3", token: "tok-env", project: "p-env" });
    const fromFlags = await resolveSettings(
      memoryContext({ env: { COFFER_CONFIG: file, COFFER_URL: "http://env:3" } }),
      { url: "http://flag:4", project: "p-flag", protocol: "connect", timeout: "5s" },
    );
    expect(fromFlags).toMatchObject({
      url: "http://flag:4",
      project: "p-flag",
      protocol: "connect",
      timeoutMs: 5000,
    });
  });

  it("defaults to the local server, on the gRPC port for grpc", async () => {
    const ctx = memoryContext({ env: { COFFER_CONFIG: file } });
    expect((await resolveSettings(ctx, {})).url).toBe("http://127.0.0.1:8080");
    expect((await resolveSettings(ctx, { protocol: "grpc" })).url).toBe("http://127.0.0.1:50051");
  });

  it("uses the profile named by --profile or COFFER_PROFILE, and refuses an unknown one", async () => {
    await writeFile(file, JSON.stringify(PROFILE), { mode: 0o600 });
    const env = { COFFER_CONFIG: file, COFFER_PROFILE: "other" };
    expect((await resolveSettings(memoryContext({ env }), {})).url).toBe("http://other:2");
    await expect(resolveSettings(memoryContext({ env }), { profile: "nope" })).rejects.toThrow(
      `no profile "nope" in ${file}`,
    );
  });

  it("refuses a bad protocol, url or timeout", async () => {
    const ctx = memoryContext({ env: { COFFER_CONFIG: file } });
    await expect(resolveSettings(ctx, { protocol: "http" })).rejects.toThrow(UsageError);
    await expect(resolveSettings(ctx, { url: "127.0.0.1:8080" })).rejects.toThrow(
      "--url must start with http:// or https://",
    );
    await expect(resolveSettings(ctx, { url: "http://a b" })).rejects.toThrow(
      "--url must be a URL",
    );
    await expect(resolveSettings(ctx, { timeout: "soon" })).rejects.toThrow(
      "--timeout must be a duration",
    );
  });
});

describe("connect", () => {
  it("without a token, says how to set one (exit 4)", async () => {
    const err = await connect(memoryContext({ env: { COFFER_CONFIG: file } }), {}).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(4);
    expect((err as CliError).message).toBe("no token: Coffer needs one for every call");
    expect((err as CliError).hint).toContain("export COFFER_TOKEN=");
    expect((err as CliError).hint).toContain(
      `coffer login --url http://127.0.0.1:8080 --token TOKEN`,
    );
  });

  it("refuses TLS files with a cleartext url", async () => {
    await expect(
      connect(memoryContext({ env: { COFFER_CONFIG: file, COFFER_TOKEN: "t" } }), {
        "ca-file": "/x.pem",
      }),
    ).rejects.toThrow("need an https:// url");
  });
});
