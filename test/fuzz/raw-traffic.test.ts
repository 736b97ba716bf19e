import http from "node:http";
import http2 from "node:http2";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PAYLOAD_MARKER } from "./arbitraries.ts";
import {
  clientsFor,
  FUZZ_SEED,
  type FuzzServer,
  MAX_RSS_GROWTH_BYTES,
  rssBytes,
  sleep,
  startFuzzServer,
} from "./support.ts";

/**
 * Raw malformed traffic, built by hand, over HTTP/1.1 (node:http) and HTTP/2
 * (node:http2), to both listeners: bad protobuf, truncated frames, oversized
 * bodies, invalid UTF-8 in string fields, wrong content types, invalid JSON,
 * gRPC-Web frames with wrong flags, the compressed flag without
 * grpc-encoding, huge headers. Every answer is a clean error (HTTP below 500,
 * gRPC status other than UNKNOWN and INTERNAL) or, for oversized headers, a
 * clean close; the server stays up, keeps serving, its memory returns near
 * its baseline, and nothing changes in the database.
 */

const GET_SECRET = "/coffer.secretmanager.v1.SecretService/GetSecret";
const CREATE_SECRET = "/coffer.secretmanager.v1.SecretService/CreateSecret";

/** What came back: an HTTP status and the gRPC status if any, or a closed connection. */
interface Answer {
  status: number | "closed";
  grpcStatus?: number | undefined;
  /** The grpc-message header or trailer (HTTP/2 only). */
  grpcMessage?: string | undefined;
  body: string;
}

let sent = 0;

function frame(flags: number, payload: Buffer, declared = payload.length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(flags, 0);
  prefix.writeUInt32BE(declared, 1);
  return Buffer.concat([prefix, payload]);
}

/** A protobuf string field (wire type 2) with raw bytes, so the bytes need not be UTF-8. */
function lengthDelimited(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

/** The status in a gRPC-Web trailers frame (flags 0x80) of a response body. */
function grpcWebStatus(body: Buffer): number | undefined {
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body.readUInt8(at);
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    if (flags & 0x80) {
      const m = /grpc-status:\s*(\d+)/i.exec(payload.toString("latin1"));
      if (m) return Number(m[1]);
    }
    at += 5 + length;
  }
  return undefined;
}

function h1(
  base: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<Answer> {
  sent++;
  return new Promise((resolve) => {
    const req = http.request(
      `${base}${path}`,
      { method: "POST", headers, agent: false, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => resolve({ status: "closed", body: "" }));
        res.on("end", () => {
          const all = Buffer.concat(chunks);
          const header = res.headers["grpc-status"];
          resolve({
            status: res.statusCode ?? 0,
            grpcStatus: header !== undefined ? Number(header) : grpcWebStatus(all),
            body: all.toString("latin1"),
          });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) =>
      resolve({ status: err.message === "timeout" ? 0 : "closed", body: String(err) }),
    );
    req.end(body);
  });
}

function h2(
  session: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<Answer> {
  sent++;
  return new Promise((resolve) => {
    let status: number | undefined;
    let grpcStatus: number | undefined;
    let grpcMessage: string | undefined;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve({ status: 0, body: "timeout" });
    }, 15_000);
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = Number(h["grpc-status"]);
      if (typeof h["grpc-message"] === "string")
        grpcMessage = decodeURIComponent(h["grpc-message"]);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) grpcStatus = Number(t["grpc-status"]);
      if (typeof t["grpc-message"] === "string")
        grpcMessage = decodeURIComponent(t["grpc-message"]);
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => undefined);
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({
        status: status ?? "closed",
        grpcStatus,
        grpcMessage,
        body: Buffer.concat(chunks).toString("latin1"),
      });
    });
    stream.end(body);
  });
}

/** A clean answer: HTTP below 500, gRPC status neither UNKNOWN (2) nor INTERNAL (13), or a close. */
function expectClean(answer: Answer, what: string, closeAllowed = false) {
  const where = `${what}: ${JSON.stringify({ ...answer, body: answer.body.slice(0, 300) })}`;
  expect(answer.body, where).not.toContain(PAYLOAD_MARKER);
  if (answer.status === "closed") {
    expect(closeAllowed, where).toBe(true);
    return;
  }
  expect(answer.status, where).toBeGreaterThanOrEqual(200);
  expect(answer.status, where).toBeLessThan(500);
  expect([2, 13], where).not.toContain(answer.grpcStatus);
  if (answer.status === 200 && answer.grpcStatus === undefined && !/"code"/.test(answer.body)) {
    // A 200 without a gRPC status is only right for a Connect unary success.
    expect(answer.body, where).not.toBe("");
  }
  expect(answer.body, where).not.toMatch(/"code":\s*"(internal|unknown)"/);
}

describe("raw malformed traffic", () => {
  let fuzz: FuzzServer;
  let baselineRss = 0;
  let before: Record<string, string>;
  let auth: Record<string, string>;

  const stillServes = async () => {
    expect(fuzz.server.exit).toBeUndefined();
    for (const c of clientsFor(fuzz.server, fuzz.server.token)) {
      await expect(c.secrets.listSecrets({}), c.label).resolves.toBeDefined();
    }
  };

  beforeAll(async () => {
    console.log(`fuzz seed ${FUZZ_SEED} (set FUZZ_SEED to change it)`);
    fuzz = await startFuzzServer("raw");
    auth = { authorization: `Bearer ${fuzz.server.token}` };
    await stillServes();
    await sleep(1000);
    baselineRss = await rssBytes(fuzz.server.pid);
    before = await fuzz.snapshot();
  });

  afterAll(async () => {
    await fuzz?.stop();
  });

  /** Random bytes around a marker: bad protobuf (or, by chance, valid protobuf). */
  const junk = fc
    .tuple(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }))
    .map(([a, b]) => Buffer.concat([Buffer.from(a), Buffer.from(PAYLOAD_MARKER), Buffer.from(b)]));
  const samples = (n: number) => fc.sample(junk, { numRuns: n, seed: FUZZ_SEED });
  const badUtf8 = [
    lengthDelimited(2, Buffer.from([0xff, 0xfe])),
    lengthDelimited(2, Buffer.from([0xc3, 0x28])),
    lengthDelimited(3, Buffer.from([0xed, 0xa0, 0x80])),
    Buffer.concat([lengthDelimited(2, Buffer.from("ok")), lengthDelimited(3, Buffer.from([0x80]))]),
  ];
  const truncatedProto = [
    Buffer.from([0x12, 0x20, 0x61]), // a string field declaring 32 bytes, holding 1
    Buffer.from([0x12]), // a tag without its length
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // an overlong varint
    Buffer.from([0x0b]), // a start-group tag
  ];
  const oversized = Buffer.alloc(600 * 1024, 0x61);
  /** Bodies that do not decode as the request message (or, by chance, do). */
  const undecodable = (n: number) => [...samples(n), ...truncatedProto];

  it("answers Connect over HTTP/1.1 cleanly", async () => {
    const base = fuzz.server.httpUrl;
    const proto = { "content-type": "application/proto", ...auth };
    const json = { "content-type": "application/json", ...auth };
    for (const body of [...undecodable(200), ...badUtf8]) {
      expectClean(await h1(base, GET_SECRET, proto, body), "connect proto");
    }
    for (const body of [
      "{",
      '{"secretId": ',
      '{"secretId": 12}',
      '{"secretId": "\\ud800"}',
      '{"unknownField": 1}',
      `{"secretId": "${PAYLOAD_MARKER}"`,
      "[]",
      "null",
      '{"secretId": "a", "secretId": "b"}',
    ]) {
      expectClean(await h1(base, GET_SECRET, json, Buffer.from(body)), `connect json ${body}`);
    }
    expectClean(
      await h1(base, GET_SECRET, json, Buffer.from([0x7b, 0xff, 0x7d])),
      "json not utf-8",
    );
    for (const type of ["text/plain", "application/xml", "", "application/grpc-web+json"]) {
      expectClean(
        await h1(base, GET_SECRET, { "content-type": type, ...auth }, Buffer.from("{}")),
        `content type ${type}`,
      );
    }
    expectClean(await h1(base, CREATE_SECRET, proto, oversized), "oversized proto");
    expectClean(await h1(base, CREATE_SECRET, json, oversized), "oversized json");
    expectClean(
      await h1(
        base,
        GET_SECRET,
        { ...proto, "connect-content-encoding": "gzip" },
        Buffer.from("x"),
      ),
      "gzip that is not gzip",
    );
    expectClean(
      await h1(base, GET_SECRET, { ...proto, "content-encoding": "br" }, Buffer.from("x")),
      "unsupported encoding",
    );
    // Huge headers: a 431 or a closed connection.
    for (const size of [20_000, 100_000]) {
      const answer = await h1(
        base,
        GET_SECRET,
        { ...proto, authorization: `Bearer ${"A".repeat(size)}` },
        Buffer.from(""),
      );
      expectClean(answer, `authorization of ${size} bytes`, true);
      const many: Record<string, string> = { ...proto };
      for (let i = 0; i < 200; i++) many[`x-fuzz-${i}`] = "v".repeat(500);
      expectClean(await h1(base, GET_SECRET, many, Buffer.from("")), "200 headers", true);
    }
    await stillServes();
  });

  it("answers gRPC-Web over HTTP/1.1 cleanly", async () => {
    const base = fuzz.server.httpUrl;
    const headers = { "content-type": "application/grpc-web+proto", ...auth };
    const cases: [string, Buffer][] = [
      ["trailer flag on a request", frame(0x80, Buffer.from("grpc-status: 0\r\n"))],
      ["unknown flags", frame(0x7e, Buffer.from("x"))],
      ["length past the body", frame(0, Buffer.from("abc"), 100)],
      ["partial prefix", Buffer.from([0, 0, 0])],
      [
        "two messages on a unary call",
        Buffer.concat([frame(0, Buffer.alloc(0)), frame(0, Buffer.alloc(0))]),
      ],
      ["empty body", Buffer.alloc(0)],
      ["declared 4 GiB", frame(0, Buffer.from("x"), 0xffff_ffff)],
      ["oversized", frame(0, oversized)],
      ...[...undecodable(200), ...badUtf8].map((b): [string, Buffer] => ["bad proto", frame(0, b)]),
    ];
    for (const [what, body] of cases) expectClean(await h1(base, GET_SECRET, headers, body), what);
    // As over gRPC (PROTOCOL-HTTP2.md, Compressed-Flag): INTERNAL is what the spec asks.
    const compressed = await h1(base, GET_SECRET, headers, frame(1, Buffer.from("x")));
    expect(compressed.grpcStatus, "compressed flag without encoding").toBe(13);
    await stillServes();
  });

  it("answers gRPC over HTTP/2 cleanly, on both listeners", async () => {
    for (const url of [fuzz.server.grpcUrl, fuzz.server.httpUrl]) {
      const grpcJs = url === fuzz.server.grpcUrl;
      const session = http2.connect(url);
      session.on("error", () => undefined);
      try {
        const headers = { "content-type": "application/grpc", te: "trailers", ...auth };
        const cases: [string, Buffer, Record<string, string>][] = [
          ...undecodable(grpcJs ? 500 : 300).map((b): [string, Buffer, Record<string, string>] => [
            "bad proto",
            frame(0, b),
            headers,
          ]),
          ...badUtf8.map((b): [string, Buffer, Record<string, string>] => [
            "bad utf-8 or truncated proto",
            frame(0, b),
            headers,
          ]),
          [
            "unknown encoding",
            frame(1, Buffer.from("x")),
            { ...headers, "grpc-encoding": "snappy" },
          ],
          ["length past the body", frame(0, Buffer.from("abc"), 100), headers],
          ["partial prefix", Buffer.from([0, 0]), headers],
          ["declared 4 GiB", frame(0, Buffer.from("x"), 0xffff_ffff), headers],
          ["oversized", frame(0, oversized), headers],
          [
            "wrong content type",
            frame(0, Buffer.alloc(0)),
            { ...headers, "content-type": "text/plain" },
          ],
        ];
        for (const [what, body, h] of cases) {
          expectClean(await h2(session, GET_SECRET, h, body), `${what} to ${url}`);
        }
        // PROTOCOL-HTTP2.md, Compressed-Flag: "If the Message-Encoding header
        // is not present, a Compressed-Flag bit of 1 MUST be treated as an
        // error by the server, which MUST reply with the status INTERNAL."
        // connect-node does so; grpc-js reads the frame as uncompressed, and
        // "x" does not decode: INVALID_ARGUMENT, clean too.
        const compressed = await h2(session, GET_SECRET, headers, frame(1, Buffer.from("x")));
        expect(compressed.grpcStatus, `compressed flag without encoding to ${url}`).toBe(
          grpcJs ? 3 : 13,
        );
        // A gzip frame that is not gzip: connect-node answers INVALID_ARGUMENT;
        // grpc-js answers INTERNAL ('Failed to decompress message', in
        // @grpc/grpc-js build/src/server-interceptors.js) before any Coffer
        // code runs, as grpc-go does: the spec names no status.
        const notGzip = await h2(
          session,
          GET_SECRET,
          { ...headers, "grpc-encoding": "gzip" },
          frame(1, Buffer.from("x")),
        );
        if (grpcJs) {
          expect(notGzip.grpcStatus, `gzip that is not gzip to ${url}`).toBe(13);
          expect(notGzip.grpcMessage).toBe("Failed to decompress message");
        } else {
          expectClean(notGzip, `gzip that is not gzip to ${url}`);
          expect(notGzip.grpcStatus).toBe(3);
        }
        // A malformed grpc-timeout: the spec names no status. connect-node
        // answers INVALID_ARGUMENT; grpc-js answers INTERNAL before any
        // Coffer code runs (@grpc/grpc-js build/src/server-interceptors.js,
        // 'Invalid grpc-timeout value'), which the adapter cannot change.
        for (const timeout of ["forever", "1", "123456789S", "-1S"]) {
          const answer = await h2(
            session,
            GET_SECRET,
            { ...headers, "grpc-timeout": timeout },
            frame(0, Buffer.alloc(0)),
          );
          if (grpcJs && answer.grpcStatus === 13) {
            expect(answer.grpcMessage).toBe(`Invalid grpc-timeout value "${timeout}"`);
          } else {
            expectClean(answer, `grpc-timeout ${timeout} to ${url}`);
            expect(answer.grpcStatus).toBe(3);
          }
        }
      } finally {
        session.close();
      }
      // Huge metadata: each on its own session, which the server may end.
      for (const size of [15_000, 60_000]) {
        const s = http2.connect(url);
        s.on("error", () => undefined);
        const answer = await h2(
          s,
          GET_SECRET,
          { "content-type": "application/grpc", authorization: `Bearer ${"A".repeat(size)}` },
          frame(0, Buffer.alloc(0)),
        );
        expectClean(answer, `authorization of ${size} bytes to ${url}`, true);
        s.destroy();
      }
      await stillServes();
    }
  });

  it("keeps the server up, its memory near its baseline and the database unchanged", async () => {
    await stillServes();
    await sleep(3000);
    const rss = await rssBytes(fuzz.server.pid);
    console.log(
      `raw requests sent: ${sent}; server RSS ${Math.round(baselineRss / 2 ** 20)} MiB before, ${Math.round(rss / 2 ** 20)} MiB after`,
    );
    expect(rss - baselineRss).toBeLessThan(MAX_RSS_GROWTH_BYTES);
    expect(await fuzz.snapshot()).toEqual(before);
    expect(sent).toBeGreaterThan(500);
  });
});
