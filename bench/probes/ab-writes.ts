/**
 * Two builds of Coffer, CreateSecretVersion, interleaved: the bench's writes
 * load (16 h2load processes of 1 connection × 1 stream, each creating 1 KiB
 * versions of a secret of its own, with a `secret_write` token; fresh
 * secrets every run) against one server per checkout, each on a fresh
 * Postgres database, in rounds that alternate their order (A B, B A, ...),
 * after a warm-up of each. Prints each run and the medians of creates/s and
 * of the server's and Postgres's CPU per create (utime + stime from /proc).
 *
 *   ROOTS=/path/to/before,/path/to/after node --import tsx bench/probes/ab-writes.ts
 *
 * Each root is a checkout, installed and built, started from its build as
 * `npm start` does. Environment: ROUNDS (default 6), SECONDS per run
 * (default 5), WARM seconds of warm-up per server (default 10), FLAGS_0 and
 * FLAGS_1, ENV_0 and ENV_1 (as in ab-access.ts: the same root twice with
 * different environments compares a setting), LANES (writers, default 16).
 * Every measured create must be answered 2xx.
 *
 * Single runs of the bench's writes measurement spread by a third within an
 * hour on a 2-core machine (bench/RESULTS.md, writes reading of 2026-12-07,
 * tenth session): a change to the create path is judged here, not by two
 * runs of `npm run bench`. Not run by CI.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { AdminService, CreateSecretVersionRequestSchema, Role, SecretService } from "@coffer/api";
import { createCofferTransport } from "@coffer/client";
import { createClient } from "@connectrpc/connect";
import { ECHO_DATA } from "../baselines/echo-payload.ts";
import { startAbServer } from "../support/ab.ts";
import { GRPC_HEADERS, methodPath } from "../support/access-requests.ts";
import { cleanup } from "../support/cleanup.ts";
import { createProject } from "../support/coffer.ts";
import { grpcFrame } from "../support/grpc-frames.ts";
import { type H2loadOptions, runH2loadLanes } from "../support/h2load.ts";
import { CLK_TCK, cpuTicksOf, postgresTicks } from "../support/processes.ts";
import { summarize } from "../support/stats.ts";

const roots = (process.env.ROOTS ?? "").split(",").filter(Boolean);
const rounds = Number(process.env.ROUNDS ?? 6);
const seconds = Number(process.env.SECONDS ?? 5);
const warm = Number(process.env.WARM ?? 10);
/** One h2load process per secret: 16 as the bench's writes measurement (LANES). */
const LANES = Number(process.env.LANES ?? 16);
if (roots.length < 2) throw new Error("ROOTS: give two checkouts, comma-separated");

interface Target {
  root: string;
  dir: string;
  pid: number;
  load: Omit<H2loadOptions, "requests" | "timeoutMs" | "bodyFile" | "logFile">;
  /** A fresh secret per lane, its request's body written to the lane's file. */
  freshSecrets: () => Promise<void>;
  /** Creates per second, as the warm-up found: sizes each run to about `seconds`. */
  rate: number;
  runs: { rate: number; cpuUs: number; pgUs: number; p50Ms: number }[];
}

const bodyFile = (t: Target, lane: number) => path.join(t.dir, `lane-${lane}.body`);

/** `requests` creates over the lanes (on the secrets freshSecrets made); measured ones must all be answered 2xx. */
async function drive(t: Target, requests: number, measured = true) {
  const perLane = Math.ceil(requests / LANES);
  const r = await runH2loadLanes(
    Array.from({ length: LANES }, (_, lane) => ({
      ...t.load,
      bodyFile: bodyFile(t, lane),
      logFile: path.join(t.dir, `lane-${lane}.h2load`),
      requests: perLane,
      timeoutMs: 120_000,
    })),
  );
  if (measured && r.status2xx !== perLane * LANES) {
    throw new Error(`${t.root}: ${perLane * LANES - r.status2xx} creates not answered 2xx`);
  }
  return { r, creates: perLane * LANES };
}

try {
  const targets: Target[] = [];
  for (const [i, root] of roots.entries()) {
    const { dir, server, settings } = await startAbServer(i, root, {
      COFFER_MAX_VERSIONS_PER_SECRET: "1000000",
    });
    const transport = createCofferTransport({ url: server.url, token: settings.adminToken });
    const { projectId } = await createProject(server.url, settings.adminToken, "ab");
    const { value: writeToken } = await createClient(AdminService, transport).createToken({
      name: "ab-writer",
      grants: [{ projectId, role: Role.SECRET_WRITE, pathPrefix: "/" }],
    });
    const secrets = createClient(SecretService, transport);
    const t: Target = {
      root,
      dir,
      pid: server.child.pid,
      load: {
        url: server.grpcUrl + methodPath("CreateSecretVersion"),
        headers: [...GRPC_HEADERS, `authorization: Bearer ${writeToken}`],
        clients: 1,
        streams: 1,
      },
      freshSecrets: async () => {
        for (let lane = 0; lane < LANES; lane++) {
          const { secret } = await secrets.createSecret({
            projectId,
            name: `ab-${t.runs.length}-${Date.now()}-${lane}`,
          });
          const request = create(CreateSecretVersionRequestSchema, {
            secretId: secret?.id as string,
            data: ECHO_DATA,
          });
          await writeFile(
            bodyFile(t, lane),
            grpcFrame(toBinary(CreateSecretVersionRequestSchema, request)),
            {
              mode: 0o600,
            },
          );
        }
      },
      rate: 0,
      runs: [],
    };
    targets.push(t);
  }
  for (const t of targets) {
    // Warm-up: a first guess of 320 creates, then at the rate found.
    await t.freshSecrets();
    t.rate = (await drive(t, 320, false)).r.rps;
    t.rate = (await drive(t, Math.ceil(t.rate * warm), false)).r.rps;
  }
  for (let round = 0; round < rounds; round++) {
    for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
      await t.freshSecrets();
      const before = cpuTicksOf(t.pid);
      const pgBefore = postgresTicks();
      const { r, creates } = await drive(t, Math.ceil(t.rate * seconds));
      const perCreate = (ticks: number) => (ticks * (1e6 / CLK_TCK)) / creates;
      const cpuUs = perCreate(cpuTicksOf(t.pid) - before);
      const pgUs = perCreate(postgresTicks() - pgBefore);
      t.runs.push({ rate: r.rps, cpuUs, pgUs, p50Ms: r.p50Ms });
      console.log(
        `${t.root}: ${r.rps.toFixed(0)} creates/s, p50 ${r.p50Ms.toFixed(2)} ms, ${cpuUs.toFixed(0)} µs CPU/create (+ Postgres ${pgUs.toFixed(0)})`,
      );
    }
  }
  for (const t of targets) {
    const median = (f: (x: Target["runs"][number]) => number) => summarize(t.runs.map(f)).p50;
    console.log(
      `median ${t.root}: ${median((x) => x.rate).toFixed(0)} creates/s, p50 ${median((x) => x.p50Ms).toFixed(2)} ms, ${median((x) => x.cpuUs).toFixed(0)} µs CPU/create (+ Postgres ${median((x) => x.pgUs).toFixed(0)}) (${t.runs.length} runs)`,
    );
  }
} finally {
  await cleanup();
}
