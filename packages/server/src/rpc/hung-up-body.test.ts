import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { CreateSecretVersionRequestSchema } from "@coffer/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.ts";
import { createTestToken, PROJECT, startTestServer } from "../testing/backends.ts";
import { secretClient } from "../testing/clients.ts";

/**
 * A client that resets its request's stream before it ends the body (a
 * browser's aborted fetch, a gRPC client's cancelled call, any client on a
 * timeout) has not sent a request: on the HTTP port nothing of it is
 * served, even when the bytes that did arrive decode as a whole message.
 *
 * The gRPC port serves a unary call once its one message is in, whether or
 * not the stream ends after it, as grpc-js itself does (node ends a reset
 * stream's readable side, which grpc-js reads as the client's half-close):
 * so it is not tested here.
 */

let server: RunningServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer();
  token = (
    await createTestToken(server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
  ).value;
});
afterAll(() => server?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One HTTP/2 frame (RFC 9113, section 4.1) on stream `id`. */
function frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an `n`-bit prefix (RFC 7541, section 5.1), prefix bits zero. */
function hpackInt(value: number, n: number): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [value];
  const out = [max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) + 128);
  out.push(value);
  return out;
}

/** Header fields as literals without indexing, names and values as plain text. */
function hpack(fields: [string, string][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    out.push(0x00, ...hpackInt(name.length, 7), ...Buffer.from(name, "latin1"));
    out.push(...hpackInt(value.length, 7), ...Buffer.from(value, "latin1"));
  }
  return Buffer.from(out);
}

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const CANCEL = 0x8;

/**
 * Sends `body` on a request of `contentType` to `path` on `port`,
 * without ending the stream (or `ended`, ending it), then resets it with
 * CANCEL, as node's own client cannot (its close() ends the stream first).
 */
async function sendThenReset(
  port: number,
  path: string,
  contentType: string,
  body: Buffer,
  ended = false,
): Promise<void> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.on("data", () => undefined);
  await new Promise((resolve) => socket.once("connect", resolve));
  const headers = hpack([
    [":method", "POST"],
    [":scheme", "http"],
    [":authority", `127.0.0.1:${port}`],
    [":path", path],
    ["content-type", contentType],
    ["authorization", `Bearer ${token}`],
  ]);
  socket.write(
    Buffer.concat([
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
      frame(SETTINGS, 0, 0, Buffer.alloc(0)),
      frame(HEADERS, END_HEADERS, 1, headers),
      frame(DATA, ended ? END_STREAM : 0, 1, body),
    ]),
  );
  await sleep(300);
  const code = Buffer.alloc(4);
  code.writeUInt32BE(CANCEL);
  socket.write(frame(RST_STREAM, 0, 1, code));
  await sleep(500);
  socket.destroy();
}

const CREATE_VERSION = "/coffer.secretmanager.v1.SecretService/CreateSecretVersion";

function envelope(message: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

describe("a request whose client resets its stream before the body ends", () => {
  const cases: [string, () => number, string, (message: Uint8Array) => Buffer][] = [
    ["Connect on the HTTP port", () => server.httpPort, "application/proto", (m) => Buffer.from(m)],
    ["gRPC-Web on the HTTP port", () => server.httpPort, "application/grpc-web+proto", envelope],
    ["gRPC on the HTTP port", () => server.httpPort, "application/grpc", envelope],
  ];
  it.each(cases)(
    "is not served: %s, though its bytes are a whole create",
    async (name, port, contentType, body) => {
      for (const ended of [false, true]) {
        const client = secretClient({ url: `http://127.0.0.1:${server.httpPort}`, token });
        const { secret } = await client.createSecret({
          projectId: PROJECT,
          name: `reset-${name.replace(/\W/g, "-")}-${ended}`,
        });
        const message = toBinary(
          CreateSecretVersionRequestSchema,
          create(CreateSecretVersionRequestSchema, {
            secretId: secret?.id ?? "",
            data: new TextEncoder().encode("never sent whole"),
          }),
        );
        await sendThenReset(port(), CREATE_VERSION, contentType, body(message), ended);
        const { versions } = await client.listSecretVersions({ secretId: secret?.id ?? "" });
        // The same bytes with the stream ended are a request, and served.
        expect(versions, ended ? "ended, then reset" : "reset before its end").toHaveLength(
          ended ? 1 : 0,
        );
      }
    },
  );
});
