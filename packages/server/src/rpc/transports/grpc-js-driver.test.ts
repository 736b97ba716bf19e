import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * @grpc/grpc-js as Coffer patches it (patches/@grpc+grpc-js+1.14.7.patch):
 * the options it answers with already say `endStream`, so that node's
 * respond(), which copies them and sets `endStream` on the copy, does not
 * make a new hidden class for every call.
 */

type Respond = (headers: unknown, options?: object) => void;

/** The prototype of node's server-side HTTP/2 streams (the class is not exported). */
async function serverStreamPrototype(): Promise<{ respond: Respond }> {
  const server = http2.createServer();
  const proto = new Promise<{ respond: Respond }>((resolve) =>
    server.once("stream", (stream) => {
      resolve(Object.getPrototypeOf(stream));
      stream.respond({ ":status": 200 }, { endStream: true });
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.request({ ":path": "/" }).resume();
  const found = await proto;
  client.close();
  await new Promise((resolve) => server.close(resolve));
  return found;
}

describe("grpc-js as Coffer patches it", () => {
  const options: object[] = [];
  let proto: { respond: Respond };
  let original: Respond;
  let server: grpc.Server;
  let client: grpc.Client;

  beforeAll(async () => {
    proto = await serverStreamPrototype();
    original = proto.respond;
    proto.respond = function (this: unknown, headers, opts) {
      if (opts !== undefined) options.push(opts);
      return original.call(this, headers, opts);
    };
    server = new grpc.Server();
    const identity = (b: Buffer) => b;
    server.addService(
      {
        Echo: {
          path: "/test.Echo/Echo",
          requestStream: false,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      },
      {
        Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
          callback(null, call.request),
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    proto.respond = original;
    client?.close();
    await new Promise<void>((resolve) =>
      server ? server.tryShutdown(() => resolve()) : resolve(),
    );
  });

  it("answers a call with response options that already carry endStream", async () => {
    const answer = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        "/test.Echo/Echo",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from("ping"),
        (err, value) => (err || value === undefined ? reject(err) : resolve(value)),
      ),
    );
    expect(answer.toString()).toBe("ping");
    // The answer's headers, sent with grpc-js's default response options.
    expect(options.length).toBeGreaterThan(0);
    for (const o of options) expect(Object.hasOwn(o, "endStream")).toBe(true);
  });
});
