import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { CreateSecretVersionRequestSchema } from "@coffer/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CONNECTION_LIMITS } from "../config.ts";
import type { RunningServer } from "../server.ts";
import { createTestToken, PROJECT, startTestServer } from "../testing/backends.ts";
import { secretClient } from "../testing/clients.ts";
import { h2Frame as frame, hpackLiterals } from "../testing/h2-frames.ts";

/**
 * How a request's body has to arrive on the HTTP port to be served: each
 * wait for its next bytes within the body timeout, however long the whole
 * takes; and ended by its client. Requests are written by hand, HTTP/2
 * frames included, since node's own client cannot stall or reset the way
 * other clients do (its close() ends a stream before resetting it).
 *
 * A client that resets its request's stream before it ends the body (a
 * browser's aborted fetch, a gRPC client's cancelled call, any client on a
 * timeout) has not sent a request: on the HTTP port nothing of it is
 * served, even when the bytes that did arrive decode as a whole message.
 * The gRPC port serves a unary call once its one message is in, whether or
 * not the stream ends after it, as grpc-js itself does (node ends a reset
 * stream's readable side, which grpc-js reads as the client's half-close):
 * so it is not tested here.
 */

const BODY_TIMEOUT_MS = 1_000;

let server: RunningServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer({
    connections: { ...DEFAULT_CONNECTION_LIMITS, bodyTimeoutMs: BODY_TIMEOUT_MS },
  });
  token = (
    await createTestToken(server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
  ).value;
});
afterAll(() => server?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const CANCEL = 0x8;

const CREATE_VERSION = "/coffer.secretmanager.v1.SecretService/CreateSecretVersion";

/** How a hand-written request ends: END_STREAM on its last piece, or RST_STREAM(CANCEL) after it. */
type Ending = "ended" | "reset";

/**
 * Sends a request of `contentType` on the HTTP port over HTTP/2, its body
 * in `pieces` with `gapMs` between them, then ends it as `ending` says, and
 * closes the connection a moment later.
 */
async function sendOverH2(
  contentType: string,
  pieces: Buffer[],
  gapMs: number,
  ending: Ending,
): Promise<void> {
  const socket = await connected();
  const headers = hpackLiterals([
    [":method", "POST"],
    [":scheme", "http"],
    [":authority", `127.0.0.1:${server.httpPort}`],
    [":path", CREATE_VERSION],
    ["content-type", contentType],
    ["authorization", `Bearer ${token}`],
  ]);
  socket.write(
    Buffer.concat([
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
      frame(SETTINGS, 0, 0, Buffer.alloc(0)),
      frame(HEADERS, END_HEADERS, 1, headers),
    ]),
  );
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await sleep(gapMs);
    const last = i === pieces.length - 1;
    socket.write(frame(DATA, last && ending === "ended" ? END_STREAM : 0, 1, piece));
  }
  await sleep(100);
  if (ending === "reset") {
    const code = Buffer.alloc(4);
    code.writeUInt32BE(CANCEL);
    socket.write(frame(RST_STREAM, 0, 1, code));
  }
  await sleep(300);
  socket.destroy();
}

/** The same over HTTP/1.1, its length declared; always ended. */
async function sendOverH1(contentType: string, pieces: Buffer[], gapMs: number): Promise<void> {
  const socket = await connected();
  const length = pieces.reduce((n, p) => n + p.length, 0);
  socket.write(
    `POST ${CREATE_VERSION} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: ${contentType}\r\nauthorization: Bearer ${token}\r\ncontent-length: ${length}\r\n\r\n`,
  );
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await sleep(gapMs);
    socket.write(piece);
  }
  await sleep(400);
  socket.destroy();
}

async function connected(): Promise<net.Socket> {
  const socket = net.connect(server.httpPort, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.on("data", () => undefined);
  await new Promise((resolve) => socket.once("connect", resolve));
  return socket;
}

function envelope(message: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/**
 * A new secret, and a CreateSecretVersionRequest for it: `message`, the
 * concatenation of `first` (the secret and the value, a whole request of its
 * own) and `rest` (a description). `versions()` counts the secret's versions.
 */
async function target(name: string) {
  const client = secretClient({ url: `http://127.0.0.1:${server.httpPort}`, token });
  const { secret } = await client.createSecret({ projectId: PROJECT, name });
  const secretId = secret?.id ?? "";
  const encoded = (init: Parameters<typeof create<typeof CreateSecretVersionRequestSchema>>[1]) =>
    Buffer.from(
      toBinary(CreateSecretVersionRequestSchema, create(CreateSecretVersionRequestSchema, init)),
    );
  const first = encoded({ secretId, data: new TextEncoder().encode("a value sent in pieces") });
  const rest = encoded({ description: "the rest of the request" });
  return {
    first,
    rest,
    message: Buffer.concat([first, rest]),
    versions: async () => (await client.listSecretVersions({ secretId })).versions.length,
  };
}

/**
 * Expects `t`'s secret to come to have `count` versions: a served request is
 * polled for (its commit may trail the connection's close), one not served
 * is given half a second to show up anyway.
 */
async function expectVersions(t: { versions: () => Promise<number> }, count: 0 | 1, what = "") {
  if (count === 0) await sleep(500);
  for (const deadline = Date.now() + 10_000; count === 1 && Date.now() < deadline; ) {
    if ((await t.versions()) === 1) break;
    await sleep(50);
  }
  expect(await t.versions(), what).toBe(count);
}

/** `bytes` cut into `n` pieces. */
function piecesOf(bytes: Buffer, n: number): Buffer[] {
  const size = Math.ceil(bytes.length / n);
  return Array.from({ length: n }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
}

describe("a request whose client resets its stream before the body ends", () => {
  const cases: [string, string, (message: Uint8Array) => Buffer][] = [
    ["Connect", "application/proto", (m) => Buffer.from(m)],
    ["gRPC-Web", "application/grpc-web+proto", envelope],
    ["gRPC", "application/grpc", envelope],
  ];
  it.each(cases)(
    "is not served: %s on the HTTP port, though its bytes are a whole create",
    async (name, contentType, body) => {
      for (const ending of ["reset", "ended"] as const) {
        const t = await target(`reset-${name}-${ending}`);
        await sendOverH2(contentType, [body(t.message)], 0, ending);
        // The same bytes with the stream ended are a request, and served.
        await expectVersions(t, ending === "ended" ? 1 : 0, ending);
      }
    },
  );
});

describe("a request body that arrives slowly", () => {
  it("is served while each wait for its next bytes is within the body timeout, however long the whole takes: HTTP/2 and HTTP/1.1", async () => {
    const gap = BODY_TIMEOUT_MS / 4;
    const h2 = await target("slow-h2");
    await sendOverH2("application/proto", piecesOf(h2.message, 8), gap, "ended");
    await expectVersions(h2, 1);
    const h1 = await target("slow-h1");
    await sendOverH1("application/proto", piecesOf(h1.message, 8), gap);
    await expectVersions(h1, 1);
  });

  it("is cut, and not served, when one wait passes the body timeout, though what came before it is a whole request: HTTP/2 and HTTP/1.1", async () => {
    const gap = BODY_TIMEOUT_MS * 2.5;
    const h2 = await target("stalled-h2");
    await sendOverH2("application/proto", [h2.first, h2.rest], gap, "ended");
    await expectVersions(h2, 0);
    const h1 = await target("stalled-h1");
    await sendOverH1("application/proto", [h1.first, h1.rest], gap);
    await expectVersions(h1, 0);
  });
});
