/**
 * Two builds of Coffer, one measurement, interleaved: AccessSecretVersion
 * at saturation (h2load, 4 connections × 16 streams, 1 KiB payload, a
 * `secret_access` token) against one server per checkout, each on a fresh
 * Postgres database, in rounds that alternate their order (A B, B A, ...),
 * after a warm-up of each. Prints each run and the medians of calls/s and of
 * the server's CPU per call (utime + stime from /proc).
 *
 *   ROOTS=/path/to/before,/path/to/after node --import tsx bench/probes/ab-access.ts
 *
 * Each root is a checkout, installed and built (`npm ci`, `npx turbo run
 * build`), started from its build as `npm start` does. Environment: MODE=grpc
 * (the gRPC port; default Connect unary POSTs on the HTTP port), ROUNDS
 * (default 6), SECONDS per run (default 4), WARM seconds of warm-up per
 * server (default 8).
 *
 * For a change of a few percent on this 2-core machine, whose single runs
 * vary by ±10 %: `npm run bench` measures against baselines, this answers
 * "did the change help" between two commits. Not run by CI.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  accessBody,
  CONNECT_HEADERS,
  GRPC_HEADERS,
  methodPath,
} from "../support/access-requests.ts";
import { cleanup, onCleanup } from "../support/cleanup.ts";
import {
  createAccessTarget,
  createDatabase,
  serverSettings,
  startCoffer,
} from "../support/coffer.ts";
import { grpcFrame } from "../support/grpc-frames.ts";
import { cpuTicksOf } from "../support/processes.ts";
import { summarize } from "../support/stats.ts";

const grpc = process.env.MODE === "grpc";
const roots = (process.env.ROOTS ?? "").split(",").filter(Boolean);
const rounds = Number(process.env.ROUNDS ?? 6);
const seconds = Number(process.env.SECONDS ?? 4);
const warm = Number(process.env.WARM ?? 8);
if (roots.length < 2) throw new Error("ROOTS: give two checkouts, comma-separated");

interface Target {
  root: string;
  pid: number;
  args: string[];
  runs: { rate: number; cpuUs: number }[];
}

try {
  const targets: Target[] = [];
  for (const [i, root] of roots.entries()) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "coffer-ab-"));
    onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
    const settings = serverSettings(
      await createDatabase("postgres://postgres@127.0.0.1:5432/test"),
      path.join(dir, "data"),
    );
    const server = await startCoffer(`ab-${i}`, settings, {
      logFile: path.join(dir, "server.log"),
      serverRoot: root,
    });
    const { secretId, accessToken } = await createAccessTarget(
      server.url,
      settings.adminToken,
      "ab",
    );
    const request = accessBody(secretId);
    const body = path.join(dir, "body.bin");
    await writeFile(body, grpc ? grpcFrame(request) : request);
    const headers = [
      ...(grpc ? GRPC_HEADERS : CONNECT_HEADERS),
      `authorization: Bearer ${accessToken}`,
    ];
    targets.push({
      root,
      pid: server.child.pid,
      args: [
        ...["-c", "4", "-m", "16", "-d", body],
        ...headers.flatMap((h) => ["-H", h]),
        (grpc ? server.grpcUrl : server.url) + methodPath("AccessSecretVersion"),
      ],
      runs: [],
    });
  }
  const h2load = (t: Target, secs: number) =>
    execFileSync("h2load", ["-D", String(secs), ...t.args], { encoding: "utf8" });
  for (const t of targets) h2load(t, warm);
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
      const before = cpuTicksOf(t.pid);
      const out = h2load(t, seconds);
      const ticks = cpuTicksOf(t.pid) - before;
      const calls = Number(out.match(/(\d+) succeeded/)?.[1]);
      const rate = Number(out.match(/finished in [\d.]+s, ([\d.]+) req\/s/)?.[1]);
      // A clock tick is 10 ms.
      const cpuUs = (ticks * 10_000) / calls;
      t.runs.push({ rate, cpuUs });
      console.log(`${t.root}: ${rate.toFixed(0)} calls/s, ${cpuUs.toFixed(0)} µs CPU/call`);
    }
  }
  for (const t of targets) {
    const rate = summarize(t.runs.map((x) => x.rate));
    const cpu = summarize(t.runs.map((x) => x.cpuUs));
    console.log(
      `median ${t.root}: ${rate.p50.toFixed(0)} calls/s, ${cpu.p50.toFixed(0)} µs CPU/call (${t.runs.length} runs)`,
    );
  }
} finally {
  await cleanup();
}
