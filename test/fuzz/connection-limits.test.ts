import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdir } from "node:fs/promises";
import http2 from "node:http2";
import net from "node:net";
import { createCofferClient } from "@coffer/client";
import { h2Frame } from "@coffer/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { rssBytes, sleep, startFuzzServer, testDatabaseUrl } from "./support.ts";

/**
 * The connection attacks of issue 11, item 1, against a real server process
 * with short limits: silent sockets, half-sent headers, preface-only HTTP/2,
 * stalled bodies, many HTTP/2 streams of big bodies, and more sockets than
 * the connection cap, on both ports where the attack applies. During each,
 * valid calls on fresh connections to both ports are still served; after
 * each, the server's memory is back near its baseline.
 */

const HEADERS_MS = 400;
const BODY_MS = 500;
const IDLE_MS = 1_500;
const MAX_CONNECTIONS = 60;
const STREAMS = 100;
const BUDGET = 16 * 1024 * 1024;
/**
 * Memory allowed above the byte budget: V8's young generation grows and is
 * not given back at once, malloc keeps freed HTTP/2 session buffers (node
 * allows each session 10 MB), and the valid calls made meanwhile allocate
 * too. Before the limits, the attacks here held 250 MB and more for good.
 */
const SLACK = 96 * 1024 * 1024;
const MiB = 2 ** 20;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** An empty SETTINGS frame. */
const SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
const LIST = "/coffer.secretmanager.v1.SecretService/ListSecrets";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";

let server: ServerProcess;
let stop: () => Promise<void>;
let grpcPort: number;
let httpPort: number;

beforeAll(async () => {
  const env = {
    COFFER_HEADERS_TIMEOUT: `${HEADERS_MS}ms`,
    COFFER_BODY_TIMEOUT: `${BODY_MS}ms`,
    COFFER_IDLE_TIMEOUT: `${IDLE_MS}ms`,
    COFFER_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
    COFFER_MAX_STREAMS_PER_CONNECTION: String(STREAMS),
    COFFER_MAX_BUFFERED_REQUEST_BYTES: String(BUDGET),
  };
  // On Postgres when there is one: the embedded database's WebAssembly heap
  // makes the server's memory large and shrinking at first (issue 11, item
  // 23), which hides what an attack adds.
  if (testDatabaseUrl) {
    const fuzz = await startFuzzServer("limits", env);
    server = fuzz.server;
    stop = fuzz.stop;
  } else {
    const dataDir = await makeTempDir("limits");
    server = await startServer({ env: { ...env, COFFER_DATA_DIR: dataDir } });
    stop = async () => {
      server.kill();
      await server.exited;
      await removeTempDir(dataDir);
    };
  }
  grpcPort = Number(server.grpcAddress.split(":").at(-1));
  httpPort = Number(server.httpAddress.split(":").at(-1));
  await validCalls();
});

afterAll(async () => {
  await stop?.();
});

const ports = () => [
  { name: "gRPC port", port: grpcPort },
  { name: "HTTP port", port: httpPort },
];

/**
 * One valid call on a fresh connection of each kind: gRPC to the gRPC port,
 * Connect over HTTP/2 and over HTTP/1.1 to the HTTP port. Each must answer
 * within 5 s.
 */
async function validCalls(): Promise<void> {
  const clients = [
    createCofferClient({ url: server.grpcUrl, protocol: "grpc", token: server.token }),
    createCofferClient({ url: server.httpUrl, protocol: "connect", token: server.token }),
    createCofferClient({
      url: server.httpUrl,
      protocol: "connect",
      httpVersion: "1.1",
      token: server.token,
    }),
  ];
  await Promise.all(
    clients.map((c) => c.listSecrets({ projectId: randomUUID() }, { timeoutMs: 5_000 })),
  );
}

/** Valid calls, one round after another, until `done` settles; each round must pass. */
async function validCallsDuring<T>(attack: Promise<T>): Promise<{ result: T; rounds: number }> {
  let over = false;
  const settled = attack.finally(() => {
    over = true;
  });
  let rounds = 0;
  const probing = (async () => {
    while (!over) {
      await validCalls();
      rounds++;
      await sleep(50);
    }
  })();
  const [result] = await Promise.all([settled, probing]);
  return { result, rounds };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Milliseconds until the socket closes, or Infinity past `withinMs`. */
function closedAfter(socket: net.Socket, withinMs: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve(0);
      return;
    }
    socket.on("error", () => undefined);
    // Read whatever the server sends: a paused socket with unread data never
    // sees the end of the stream.
    socket.resume();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Number.POSITIVE_INFINITY);
    }, withinMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

/** A gRPC message prefix declaring `length` bytes. */
function grpcPrefix(length: number): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

async function openDescriptors(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

describe("connection limits", () => {
  it("closes silent sockets after the first-byte timeout, on both ports", async () => {
    for (const { name, port } of ports()) {
      const sockets = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
      const { result: closed } = await validCallsDuring(
        Promise.all(sockets.map((s) => closedAfter(s, 10_000))),
      );
      console.log(`${name}: 20 silent sockets closed after ${Math.round(Math.max(...closed))} ms`);
      for (const ms of closed) {
        expect(ms, name).toBeGreaterThan(HEADERS_MS - 100);
        expect(ms, name).toBeLessThan(HEADERS_MS + 1_500);
      }
    }
  });

  it("closes connections whose headers stop half-way: HTTP/1.1, a keep-alive's next request, HTTP/2 on both ports", async () => {
    const drip = (socket: net.Socket, first: Buffer | string) => {
      socket.write(first);
      const timer = setInterval(() => socket.writable && socket.write("a"), 100);
      socket.once("close", () => clearInterval(timer));
    };
    const h1 = await connect(httpPort);
    drip(h1, "POST /x HTTP/1.1\r\nhost: a\r\nx-slow: ");
    // A keep-alive connection that made one request, then drips the next.
    const keepAlive = await connect(httpPort);
    keepAlive.write(
      `POST ${"/grpc.health.v1.Health/Check"} HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`,
    );
    await new Promise((resolve) => keepAlive.once("data", resolve));
    drip(keepAlive, "POST /x HTTP/1.1\r\nhost: a\r\nx-slow: ");
    // HTTP/2: the preface and SETTINGS, then a HEADERS frame that declares
    // 100 bytes and sends 10.
    const h2 = await Promise.all(ports().map(({ port }) => connect(port)));
    for (const s of h2) {
      s.on("data", () => undefined);
      s.write(
        Buffer.concat([PREFACE, SETTINGS, h2Frame(0x1, 0x4, 1, Buffer.alloc(100)).subarray(0, 19)]),
      );
    }
    const { result: closed } = await validCallsDuring(
      Promise.all([h1, keepAlive, ...h2].map((s) => closedAfter(s, 10_000))),
    );
    console.log(
      `half-sent headers closed after ${closed.map((ms) => Math.round(ms)).join(", ")} ms`,
    );
    for (const ms of closed) expect(ms).toBeLessThan(HEADERS_MS + 1_500);
  });

  it("closes HTTP/2 connections that send only the preface, on both ports", async () => {
    const sockets = await Promise.all(ports().map(({ port }) => connect(port)));
    for (const s of sockets) {
      s.on("data", () => undefined);
      s.write(PREFACE);
    }
    const { result: closed } = await validCallsDuring(
      Promise.all(sockets.map((s) => closedAfter(s, 10_000))),
    );
    console.log(`preface-only closed after ${closed.map((ms) => Math.round(ms)).join(", ")} ms`);
    for (const ms of closed) expect(ms).toBeLessThan(HEADERS_MS + 1_500);
  });

  it("reads the HTTP/2 preface sent in pieces ('PR', a pause, the rest) on the HTTP port", async () => {
    // A proxy that forwards the client's first 2 bytes, waits, then the rest.
    const proxy = net.createServer((client) => {
      const upstream = net.connect(httpPort, "127.0.0.1");
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      upstream.pipe(client);
      client.once("data", (first: Buffer) => {
        client.pause();
        upstream.write(first.subarray(0, 2));
        setTimeout(() => {
          upstream.write(first.subarray(2));
          client.pipe(upstream);
          client.resume();
        }, 200);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = proxy.address() as net.AddressInfo;
      const client = createCofferClient({
        url: `http://127.0.0.1:${port}`,
        protocol: "connect",
        token: server.token,
      });
      const answer = await client.listSecrets({ projectId: randomUUID() }, { timeoutMs: 5_000 });
      expect(answer.secrets).toEqual([]);
    } finally {
      proxy.close();
    }
  });

  it("closes stalled request bodies after the body timeout and frees their bytes, HTTP/1.1 and HTTP/2 on both ports", async () => {
    await sleep(500);
    const baseline = await rssBytes(server.pid);
    const body = Buffer.alloc(480_000, 0x61);
    const stalled: Promise<number>[] = [];
    // 150 HTTP/1.1 requests stopped 20 KB short of their declared length.
    for (let i = 0; i < 150; i++) {
      const s = await connect(httpPort);
      s.on("data", () => undefined);
      s.write(
        `POST ${LIST} HTTP/1.1\r\nhost: a\r\ncontent-type: application/proto\r\nauthorization: Bearer ${server.token}\r\ncontent-length: ${body.length + 20_000}\r\n\r\n`,
      );
      s.write(body);
      stalled.push(closedAfter(s, 15_000));
    }
    // On each port, 2 HTTP/2 connections of 50 streams, each a gRPC message
    // declared 500,000 bytes long and stopped after 480,000.
    const streamsClosed: Promise<number>[] = [];
    const sessions: http2.ClientHttp2Session[] = [];
    for (const { port } of ports()) {
      for (let c = 0; c < 2; c++) {
        const session = http2.connect(`http://127.0.0.1:${port}`);
        session.on("error", () => undefined);
        sessions.push(session);
        for (let i = 0; i < 50; i++) {
          const started = performance.now();
          const stream = session.request({
            ":method": "POST",
            ":path": LIST,
            "content-type": "application/grpc",
            te: "trailers",
            authorization: `Bearer ${server.token}`,
          });
          stream.on("error", () => undefined);
          stream.on("data", () => undefined);
          stream.write(Buffer.concat([grpcPrefix(500_000), body]));
          streamsClosed.push(streamClosedAfter(stream, started, 15_000));
        }
      }
    }
    let peak = baseline;
    const sampling = setInterval(async () => {
      peak = Math.max(peak, await rssBytes(server.pid).catch(() => 0));
    }, 100);
    try {
      const { result, rounds } = await validCallsDuring(
        Promise.all([Promise.all(stalled), Promise.all(streamsClosed)]),
      );
      const [sockets, streams] = result;
      await sleep(1_500);
      const after = await rssBytes(server.pid);
      console.log(
        `stalled bodies: 150 HTTP/1.1 closed within ${Math.round(Math.max(...sockets))} ms, 200 HTTP/2 streams within ${Math.round(Math.max(...streams))} ms; ${rounds} rounds of valid calls meanwhile; server RSS ${Math.round(baseline / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB, ${Math.round(after / MiB)} MiB after`,
      );
      for (const ms of sockets) expect(ms).toBeLessThan(10_000);
      for (const ms of streams) expect(ms).toBeLessThan(10_000);
      expect(peak - baseline).toBeLessThan(BUDGET + SLACK);
      // Freed memory may stay with the process (malloc arenas, V8's heap),
      // but no more than the peak allowed; the next test starts from that
      // level and stays within its bound too, so it is reused, not leaked.
      expect(after - baseline).toBeLessThan(BUDGET + SLACK);
    } finally {
      clearInterval(sampling);
      for (const s of sessions) s.destroy();
    }
  });

  it("keeps many HTTP/2 connections x 100 streams x 480 KB within the byte budget, on both ports", async () => {
    // As in the issue: 12 x 100 x 480 KB, 576 MB of request bodies per port.
    const CONNECTIONS = 12;
    const chunk = Buffer.alloc(16_000, 0x61);
    for (const { name, port } of ports()) {
      await sleep(500);
      const baseline = await rssBytes(server.pid);
      let peak = baseline;
      const sampling = setInterval(async () => {
        peak = Math.max(peak, await rssBytes(server.pid).catch(() => 0));
      }, 100);
      const codes = new Map<string, number>();
      const count = (code: string) => codes.set(code, (codes.get(code) ?? 0) + 1);
      const sessions: http2.ClientHttp2Session[] = [];
      let advertised: number | undefined;
      const attack = async () => {
        const streams: Promise<number>[] = [];
        for (let c = 0; c < CONNECTIONS; c++) {
          const session = http2.connect(`http://127.0.0.1:${port}`);
          session.on("error", () => undefined);
          sessions.push(session);
          // A busy server may close a connection that has not made its first
          // call within the (short) first-request timeout: skip it.
          const ready = await Promise.race([
            new Promise((resolve) => session.once("remoteSettings", () => resolve(true))),
            new Promise((resolve) => session.once("close", () => resolve(false))),
            sleep(5_000).then(() => false),
          ]);
          if (!ready) continue;
          advertised = session.remoteSettings.maxConcurrentStreams;
          for (let i = 0; i < STREAMS; i++) {
            const stream = session.request({
              ":method": "POST",
              ":path": LIST,
              "content-type": "application/grpc",
              te: "trailers",
              authorization: `Bearer ${server.token}`,
            });
            stream.on("error", () => undefined);
            stream.on("data", () => undefined);
            stream.on("response", (h) => {
              if (h["grpc-status"] !== undefined) count(String(h["grpc-status"]));
            });
            stream.on("trailers", (t) => count(String(t["grpc-status"])));
            streams.push(streamClosedAfter(stream, performance.now(), 15_000));
            // 480,000 bytes of a 500,000-byte message, in 16 KB writes, then a stall.
            stream.write(grpcPrefix(500_000));
            for (let k = 0; k < 30; k++) stream.write(chunk);
          }
        }
        return Promise.all(streams);
      };
      try {
        const { result: closed, rounds } = await validCallsDuring(attack());
        await sleep(1_500);
        const after = await rssBytes(server.pid);
        console.log(
          `${name}: ${CONNECTIONS} connections x ${STREAMS} streams x 480 KB: streams closed within ${Math.round(Math.max(...closed))} ms; server RSS ${Math.round(baseline / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB, ${Math.round(after / MiB)} MiB after; grpc-status ${JSON.stringify(Object.fromEntries(codes))}; ${rounds} rounds of valid calls meanwhile`,
        );
        expect(advertised, name).toBe(STREAMS);
        expect(Math.max(...closed), name).toBeLessThan(15_000);
        expect(peak - baseline, name).toBeLessThan(BUDGET + SLACK);
        expect(after - baseline, name).toBeLessThan(BUDGET + SLACK);
      } finally {
        clearInterval(sampling);
        for (const s of sessions) s.destroy();
      }
    }
  });

  it("closes idle HTTP/1.1 keep-alive and HTTP/2 sessions, but not sessions with an open watch or health watch, on both ports", async () => {
    // HTTP/1.1 keep-alive after one request.
    const keepAlive = await connect(httpPort);
    keepAlive.on("data", () => undefined);
    keepAlive.write(
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    const idleClosed: Promise<number>[] = [closedAfter(keepAlive, 10_000)];
    // HTTP/2 sessions: one call each, then nothing.
    const quiet: http2.ClientHttp2Session[] = [];
    for (const { port } of ports()) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on("error", () => undefined);
      quiet.push(session);
      await health(session, "/grpc.health.v1.Health/Check");
      idleClosed.push(
        new Promise((resolve) => {
          const started = performance.now();
          session.once("close", () => resolve(performance.now() - started));
        }),
      );
    }
    // Sessions with a long-lived stream: a health Watch (silent after its
    // first message) on each port, WatchSecrets (heartbeats every 15 s) on each.
    const busy: { session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream }[] = [];
    for (const { port } of ports()) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on("error", () => undefined);
      const stream = session.request({
        ":method": "POST",
        ":path": HEALTH_WATCH,
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => undefined);
      stream.end(grpcPrefix(0));
      await new Promise((resolve) => stream.once("data", resolve));
      busy.push({ session, stream });
    }
    const watchers = [server.grpcUrl, server.httpUrl].map((url) => {
      const abort = new AbortController();
      const client = createCofferClient({
        url,
        protocol: url === server.grpcUrl ? "grpc" : "connect",
        token: server.token,
      });
      let ended: unknown;
      const done = (async () => {
        try {
          for await (const _ of client.watchSecrets(
            { projectId: randomUUID() },
            { signal: abort.signal },
          ));
          ended = "ended";
        } catch (err) {
          if (!abort.signal.aborted) ended = err;
        }
      })();
      return { abort, done, ended: () => ended };
    });
    const closed = await Promise.all(idleClosed);
    console.log(
      `idle connections closed after ${closed.map((ms) => Math.round(ms)).join(", ")} ms`,
    );
    for (const ms of closed) {
      expect(ms).toBeGreaterThan(IDLE_MS - 200);
      expect(ms).toBeLessThan(IDLE_MS + 2_000);
    }
    await sleep(IDLE_MS);
    for (const { session, stream } of busy) {
      expect(session.closed || session.destroyed).toBe(false);
      expect(stream.closed).toBe(false);
      session.destroy();
    }
    for (const w of watchers) {
      expect(w.ended()).toBeUndefined();
      w.abort.abort();
      await w.done;
    }
    for (const s of quiet) s.destroy();
  });

  it("caps connections per port: more sockets than the cap do not starve the server of descriptors, and valid calls get through", async () => {
    const pid = server.pid;
    const before = await openDescriptors(pid);
    // A descriptor limit that 2 x 320 sockets would exceed without the cap.
    const limit = before + 2 * MAX_CONNECTIONS + 150;
    // The soft limit only: raising a hard limit back needs privileges.
    execFileSync("prlimit", [`--pid=${pid}`, `--nofile=${limit}:`]);
    try {
      const sockets: net.Socket[] = [];
      const closedEarly: Promise<number>[] = [];
      const attack = async () => {
        for (const { port } of ports()) {
          for (let i = 0; i < 320; i++) {
            const s = await connect(port).catch(() => undefined);
            if (s === undefined) continue;
            sockets.push(s);
            closedEarly.push(closedAfter(s, 5_000));
          }
        }
      };
      let peak = before;
      const sampling = setInterval(async () => {
        peak = Math.max(peak, await openDescriptors(pid).catch(() => 0));
      }, 20);
      const { rounds } = await validCallsDuring(attack()).finally(() => clearInterval(sampling));
      const closed = await Promise.all(closedEarly);
      const fast = closed.filter((ms) => ms < HEADERS_MS - 100).length;
      console.log(
        `connection cap: ${sockets.length} sockets opened, ${fast} closed before the first-byte timeout; server descriptors ${before} before, at most ${peak} during (limit ${limit}); ${rounds} rounds of valid calls meanwhile`,
      );
      // Each port's connections, the valid calls' and the database's.
      expect(peak).toBeLessThan(before + 2 * MAX_CONNECTIONS + 30);
      for (const ms of closed) expect(ms).toBeLessThan(HEADERS_MS + 1_500);
      expect(server.exit).toBeUndefined();
      await validCalls();
    } finally {
      execFileSync("prlimit", [`--pid=${pid}`, "--nofile=20000:"]);
    }
  });
});

/**
 * Milliseconds from `started` until the stream is closed, or Infinity past
 * `withinMs` (then reset). A stream that a GOAWAY closed before the server
 * saw it is closed without its "close" event while it still has data to
 * write: its state says so.
 */
function streamClosedAfter(
  stream: http2.ClientHttp2Stream,
  started: number,
  withinMs: number,
): Promise<number> {
  return new Promise((resolve) => {
    const done = (ms: number) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve(ms);
    };
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      done(Number.POSITIVE_INFINITY);
    }, withinMs);
    const poll = setInterval(() => {
      if (stream.closed) done(performance.now() - started);
    }, 50);
    stream.once("close", () => done(performance.now() - started));
  });
}

/** A gRPC health call on a session; resolves when the stream closes. */
function health(session: http2.ClientHttp2Session, path: string): Promise<void> {
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => undefined);
    stream.on("data", () => undefined);
    stream.once("close", () => resolve());
    stream.end(grpcPrefix(0));
  });
}
