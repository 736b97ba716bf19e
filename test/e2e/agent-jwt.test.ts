import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { AdminService, type CofferClient, createCofferTransport, Role } from "@coffer/client";
import { startOidcIssuer, type TestOidcIssuer } from "@coffer/server/testing";
import { createClient } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type AgentProcess,
  spawnAgent,
  startAgentFixture,
  writeAgentConfig,
} from "../support/agent-process.ts";
import type { ServerProcess } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The sidecar signing in without a Coffer token (issue 17): a local OIDC
 * issuer stands for the cluster, an admin trusts it and binds its service
 * account to a grant, the agent runs with `server.auth.jwt_file`, and the
 * JWT file is replaced as the kubelet replaces it. The JWTs live 30 s, so
 * the exchanged Coffer tokens do too (a token never outlives its JWT): the
 * agent renews them every 20 s or so, and must keep its watch stream and
 * its files without a gap across the renewals.
 */

const AUDIENCE = "coffer-e2e";
const SUBJECT = "system:serviceaccount:prod:web";
/** How long each JWT lives, in seconds: the exchanged tokens live no longer. */
const JWT_LIFE = 30;

/** Polls until `check` holds; fails with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const contentOf = (file: string) => readFile(file, "utf8").catch(() => undefined);

describe("coffer-agent signing in with a JWT file (server.auth.jwt_file)", () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  let issuer: TestOidcIssuer | undefined;
  let admin: CofferClient;
  let projectId = "";
  const running: AgentProcess[] = [];
  /** Every JWT written, to check that no output holds one. */
  const jwts: string[] = [];

  beforeAll(async () => {
    dataDir = await makeTempDir("agent-jwt");
    issuer = await startOidcIssuer({ audience: AUDIENCE });
    ({ server, admin, projectId } = await startAgentFixture(dataDir, "agent-jwt"));
    const adminApi = createClient(
      AdminService,
      createCofferTransport({ url: server.httpUrl, token: server.token, timeoutMs: 30_000 }),
    );
    const { issuer: trusted } = await adminApi.createTrustedIssuer({
      issuer: {
        name: "e2e-cluster",
        issuerUrl: issuer.url,
        audiences: [issuer.audience],
        keys: { case: "jwksUrl", value: issuer.jwksUrl },
      },
    });
    await adminApi.createIdentityBinding({
      binding: {
        name: "web",
        issuerId: trusted?.id ?? "",
        conditions: [
          { claim: "sub", value: SUBJECT },
          { claim: "/kubernetes.io/namespace", value: "prod" },
        ],
        grants: [{ projectId, role: Role.SECRET_ACCESS, pathPrefix: "/web" }],
        tokenTtl: durationFromMs(60_000),
      },
    });
  }, 60_000);

  afterEach(async () => {
    await Promise.all(running.splice(0).map((a) => a.stop(5000)));
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await issuer?.close();
    await removeTempDir(dataDir);
  });

  /** A service-account JWT as Kubernetes projects it, living JWT_LIFE seconds. */
  async function serviceAccountJwt(): Promise<string> {
    const jwt = await (issuer as TestOidcIssuer).sign({
      claims: {
        sub: SUBJECT,
        "kubernetes.io": { namespace: "prod", serviceaccount: { name: "web", uid: "u-1" } },
      },
      expiresInS: JWT_LIFE,
    });
    jwts.push(jwt);
    return jwt;
  }

  /** Replaces the file as the kubelet does: a new file renamed over the old one. */
  async function rotate(file: string): Promise<void> {
    const next = `${file}.${randomBytes(4).toString("hex")}`;
    await writeFile(next, await serviceAccountJwt(), { mode: 0o600 });
    await rename(next, file);
  }

  it("exchanges the JWT, renews its token and keeps its stream and files without a gap", async () => {
    const work = path.join(dataDir as string, "agent");
    await mkdir(work, { recursive: true });
    const jwtFile = path.join(work, "token");
    await rotate(jwtFile);
    const { secret } = await admin.createSecret({
      projectId,
      path: "/web",
      name: "api-key",
      firstVersion: { data: Buffer.from("v1") },
    });
    const secretId = secret?.id ?? "";
    const destination = path.join(work, "api-key");
    const config = await writeAgentConfig(path.join(work, "agent.yaml"), {
      server: { url: server?.httpUrl, auth: { jwt_file: jwtFile } },
      project_id: projectId,
      state_file: "state.json",
      heartbeat_interval: "1s",
      secrets: [{ path: "/web", name: "api-key", destination: "api-key" }],
    });
    // No COFFER_TOKEN: the JWT file is all it has.
    const agent = spawnAgent({ config });
    running.push(agent);
    await until("the file is rendered", async () => (await contentOf(destination)) === "v1");
    await agent.waitForLog((l) => l.msg === "signed in with the JWT");

    // From now on: the file must never be missing, the JWT file is replaced
    // every 5 s, and a change every 3 s must reach the file within a second.
    let missing = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        if (
          !(await stat(destination).then(
            () => true,
            () => false,
          ))
        )
          missing += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const rotator = setInterval(() => void rotate(jwtFile), 5_000);
    const renewals = () => agent.logs().filter((l) => l.msg === "Coffer token renewed").length;
    const moves = () =>
      agent.logs().filter((l) => l.msg === "watch moved to a stream with the renewed token").length;
    let revision = 1;
    const latencies: number[] = [];
    const change = async () => {
      revision += 1;
      const value = `v${revision}`;
      await admin.createSecretVersion({ secretId, data: Buffer.from(value) });
      const t0 = Date.now();
      await until(
        `${value} reaches the file`,
        async () => (await contentOf(destination)) === value,
        5_000,
      );
      latencies.push(Date.now() - t0);
    };
    try {
      // Two renewals at least: each about 20 s after the exchange before it.
      const deadline = Date.now() + 75_000;
      while ((renewals() < 2 || moves() < 2) && Date.now() < deadline) {
        await change();
        await new Promise((r) => setTimeout(r, 3_000));
      }
      expect(renewals()).toBeGreaterThanOrEqual(2);
      expect(moves()).toBeGreaterThanOrEqual(2);
      // Past the last renewal (and the expiry of the token before it): one more change.
      await new Promise((r) => setTimeout(r, 2_000));
      await change();
    } finally {
      clearInterval(rotator);
      sampling = false;
      await sampler;
    }

    expect(missing).toBe(0);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
    // The agent logs a file after renaming it into place, and its output
    // crosses a pipe: the last change's line may trail the file itself.
    const last = revision;
    await agent.waitForLog((l) => l.msg === "file written" && l.revision === last);
    const logs = agent.logs();
    // The server never ended a stream under the agent: each move came first.
    expect(logs.filter((l) => String(l.msg).includes("reconnecting"))).toEqual([]);
    expect(logs.filter((l) => l.msg === "cannot renew the Coffer token; retrying")).toEqual([]);
    // Every version written once, in order.
    const written = logs.filter((l) => l.msg === "file written").map((l) => l.revision);
    expect(written).toEqual(Array.from({ length: revision }, (_, i) => i + 1));
    // Ready throughout (a renewal is not a restart).
    const health = logs.filter((l) => l.msg === "ready: every file rendered or found absent");
    expect(health).toHaveLength(1);
    const output = agent.stdout + agent.stderr;
    for (const jwt of jwts) expect(output).not.toContain(jwt);
    expect(output).not.toMatch(/coffer_[A-Za-z0-9]{8}/);
    expect(output).not.toContain("eyJ");
  }, 150_000);

  it("refuses a JWT for another service account, saying what to check, and never logs it", async () => {
    const work = path.join(dataDir as string, "agent-refused");
    await mkdir(work, { recursive: true });
    const jwtFile = path.join(work, "token");
    const jwt = await (issuer as TestOidcIssuer).sign({
      claims: { sub: "system:serviceaccount:prod:other", "kubernetes.io": { namespace: "prod" } },
      expiresInS: JWT_LIFE,
    });
    await writeFile(jwtFile, jwt, { mode: 0o600 });
    const config = await writeAgentConfig(path.join(work, "agent.yaml"), {
      server: { url: server?.httpUrl, auth: { jwt_file: jwtFile } },
      project_id: projectId,
      state_file: "state.json",
      secrets: [{ path: "/web", name: "api-key", destination: "api-key" }],
    });
    const agent = spawnAgent({ config });
    running.push(agent);
    const failed = await agent.waitForLog((l) =>
      String(l.err ?? "").includes(`the JWT file ${jwtFile}`),
    );
    expect(String(failed.err)).toContain("identity binding");
    expect(agent.stdout + agent.stderr).not.toContain(jwt);
  }, 60_000);
});
