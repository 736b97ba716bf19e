import { randomUUID } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CONNECTION_LIMITS, loadConfig } from "../../config.ts";
import type { RunningServer } from "../../server.ts";
import { createTestToken, startTestServer } from "../../testing/backends.ts";
import { createTestCertificates, type TestCertificates } from "../../testing/certs.ts";
import { secretClient } from "../../testing/clients.ts";
import { type BudgetHolder, HTTP2_PREFACE, RequestBudget, sniffProtocol } from "./limits.ts";
import { RENEW_EVERY } from "./stream-tables.ts";

describe("RequestBudget", () => {
  const holder = (evicted: string[], name: string): BudgetHolder & { name: string } => ({
    name,
    evict: () => evicted.push(name),
  });

  it("charges up to its capacity, releases on release, and refuses when nothing can make room", () => {
    const budget = new RequestBudget(100);
    const evicted: string[] = [];
    const a = holder(evicted, "a");
    const b = holder(evicted, "b");
    expect(budget.charge(a, 60)).toBe(true);
    budget.received(a);
    expect(budget.charge(b, 40)).toBe(true);
    expect(budget.used).toBe(100);
    // a's body is in (never evicted); b is the asker: nothing to evict.
    expect(budget.charge(b, 1)).toBe(false);
    expect(budget.used).toBe(100);
    budget.release(a);
    budget.release(a);
    expect(budget.used).toBe(40);
    expect(budget.charge(b, 60)).toBe(true);
    expect(evicted).toEqual([]);
  });

  it("evicts the biggest bodies still arriving for a smaller request, never a smaller one for a bigger", () => {
    const budget = new RequestBudget(100);
    const evicted: string[] = [];
    const big = holder(evicted, "big");
    const bigger = holder(evicted, "bigger");
    const small = holder(evicted, "small");
    expect(budget.charge(big, 40)).toBe(true);
    expect(budget.charge(bigger, 55)).toBe(true);
    // 10 bytes for a new request: the biggest stalled body goes.
    expect(budget.charge(small, 10)).toBe(true);
    expect(evicted).toEqual(["bigger"]);
    expect(budget.used).toBe(50);
    // A request that would hold more than the others is refused instead.
    const huge = holder(evicted, "huge");
    expect(budget.charge(huge, 51)).toBe(false);
    expect(evicted).toEqual(["bigger"]);
    expect(budget.used).toBe(50);
  });

  it("keeps its holders and their bytes across the renewals of its table (every RENEW_EVERY releases)", () => {
    const budget = new RequestBudget(500);
    const evicted: string[] = [];
    // Two stalled bodies held through several renewals, while calls come and go.
    const stalledSmall = holder(evicted, "stalled-small");
    const stalledBig = holder(evicted, "stalled-big");
    expect(budget.charge(stalledSmall, 100)).toBe(true);
    expect(budget.charge(stalledBig, 300)).toBe(true);
    for (let i = 0; i < 3 * RENEW_EVERY + 1; i++) {
      const call = holder(evicted, `call-${i}`);
      expect(budget.charge(call, 10)).toBe(true);
      budget.received(call);
      budget.release(call);
    }
    expect(budget.used).toBe(400);
    // The renewed table still knows both, their bytes and that they are
    // receiving: room for 150 more evicts the bigger one.
    expect(budget.charge(holder(evicted, "asker"), 150)).toBe(true);
    expect(evicted).toEqual(["stalled-big"]);
    expect(budget.used).toBe(250);
    budget.release(stalledSmall);
    expect(budget.used).toBe(150);
  });
});

describe("sniffProtocol", () => {
  /** Sends `parts` with a pause between each and says what the sniff decided, with the bytes it put back. */
  async function sniff(parts: Buffer[]): Promise<{ protocol: string; head: Buffer } | "undecided"> {
    let decided: (v: { protocol: string; head: Buffer }) => void = () => undefined;
    const result = new Promise<{ protocol: string; head: Buffer }>((r) => {
      decided = r;
    });
    const server = net.createServer((socket) =>
      sniffProtocol(socket, (protocol) => {
        const head: Buffer = socket.read() ?? Buffer.alloc(0);
        decided({ protocol, head });
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    try {
      for (const part of parts) {
        client.write(part);
        await new Promise((r) => setTimeout(r, 100));
      }
      return await Promise.race([
        result,
        new Promise<"undecided">((r) => setTimeout(() => r("undecided"), 300)),
      ]);
    } finally {
      client.destroy();
      server.close();
    }
  }

  it("waits for the whole HTTP/2 preface, however it is split, and puts every byte back", async () => {
    const rest = Buffer.from("after");
    expect(await sniff([HTTP2_PREFACE.subarray(0, 2)])).toBe("undecided");
    expect(await sniff([HTTP2_PREFACE.subarray(0, 23)])).toBe("undecided");
    expect(
      await sniff([
        HTTP2_PREFACE.subarray(0, 2),
        HTTP2_PREFACE.subarray(2, 10),
        Buffer.concat([HTTP2_PREFACE.subarray(10), rest]),
      ]),
    ).toEqual({ protocol: "h2", head: Buffer.concat([HTTP2_PREFACE, rest]) });
  });

  it("decides HTTP/1 as soon as the bytes cannot begin the preface", async () => {
    for (const start of ["POST / HTTP/1.1\r\n", "PUT", "PRI * HTTP/1.1\r\n"]) {
      expect(await sniff([Buffer.from(start)])).toEqual({
        protocol: "h1",
        head: Buffer.from(start),
      });
    }
  });
});

describe("connection limits with TLS", () => {
  let certs: TestCertificates;
  let server: RunningServer;

  beforeAll(async () => {
    certs = createTestCertificates();
    server = await startTestServer({
      tls: loadConfig({
        COFFER_TLS_CERT: certs.server.cert.file,
        COFFER_TLS_KEY: certs.server.key.file,
      }).tls,
      connections: { ...DEFAULT_CONNECTION_LIMITS, headersTimeoutMs: 300, idleTimeoutMs: 800 },
    });
  });

  afterAll(async () => {
    await server?.stop();
    certs?.remove();
  });

  /** Milliseconds until the socket closes (Infinity past 5 s). */
  const closedAfter = (socket: net.Socket): Promise<number> => {
    const started = performance.now();
    socket.on("error", () => undefined);
    socket.resume();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(Number.POSITIVE_INFINITY);
      }, 5_000);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve(performance.now() - started);
      });
    });
  };
  const tlsConnect = (port: number, alpn: string) =>
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect(
        { port, host: "127.0.0.1", ca: certs.ca.cert.pem, ALPNProtocols: [alpn] },
        () => resolve(s),
      );
      s.once("error", reject);
    });

  it("closes silent TCP sockets, silent TLS sessions and half-sent HTTP/1.1 headers on both ports, and still serves", async () => {
    const sockets: net.Socket[] = [];
    for (const port of [server.grpcPort, server.httpPort]) {
      sockets.push(net.connect(port, "127.0.0.1"));
      sockets.push(await tlsConnect(port, "h2"));
    }
    const h1 = await tlsConnect(server.httpPort, "http/1.1");
    h1.write("POST /x HTTP/1.1\r\nhost: a\r\nx-slow: ");
    sockets.push(h1);
    const closed = Promise.all(sockets.map(closedAfter));
    for (const protocol of ["grpc", "connect"] as const) {
      const client = secretClient({
        url: `https://127.0.0.1:${protocol === "grpc" ? server.grpcPort : server.httpPort}`,
        protocol,
        tls: { ca: certs.ca.cert.pem },
        token: (
          await createTestToken(server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
        ).value,
      });
      await client.listSecrets({ projectId: randomUUID() });
    }
    for (const ms of await closed) {
      expect(ms).toBeGreaterThan(200);
      expect(ms).toBeLessThan(2_000);
    }
  });
});
