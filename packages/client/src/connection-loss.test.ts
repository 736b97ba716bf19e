import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CofferClient } from "./client.ts";
import { type CofferClientOptions, createCofferClient } from "./index.ts";

/**
 * What a caller sees when the server dies under a call, over every protocol
 * the client speaks: UNAVAILABLE, which the retries retry, rather than the
 * CANCELED or ABORTED connect-node reports. The servers here are bare
 * node:http2 and node:http servers that take the request and then drop the
 * connection as a killed process does: its socket closed (FIN), or reset
 * (RST, when unread bytes remain). A server's own ABORTED (a stale etag) and
 * the caller's own cancel keep their codes.
 */

type Cut = "close" | "reset";
/** What the server does with each request. */
type Behaviour =
  | { cut: Cut; afterMessage?: boolean }
  | { answer: "aborted" }
  | { answer: "ok" }
  | { answer: "one message, then nothing" }
  | { answer: "never" };

const SECRET_ID = "00000000-0000-4000-8000-000000000001";
/** An empty protobuf message in a gRPC / Connect streaming envelope. */
const EMPTY_MESSAGE = Buffer.alloc(5);

/** A bare HTTP/2 server and a bare HTTP/1.1 server, each answering by `behave()`. */
class DyingServer {
  behave: (n: number) => Behaviour = () => ({ cut: "close" });
  requests = 0;
  readonly #h2 = http2.createServer();
  readonly #h1 = http.createServer();
  readonly #sockets = new Set<Socket>();

  constructor() {
    for (const server of [this.#h2, this.#h1]) {
      server.on("connection", (socket: Socket) => {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
      });
    }
    this.#h2.on("sessionError", () => {});
    this.#h2.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      const how = this.behave(++this.requests);
      const grpc = String(headers["content-type"]).startsWith("application/grpc");
      if ("cut" in how) {
        if (how.afterMessage) {
          stream.respond({ ":status": 200, "content-type": headers["content-type"] });
          stream.write(EMPTY_MESSAGE);
        }
        setTimeout(() => this.cut(how.cut), 30);
      } else if (how.answer === "aborted") {
        if (!grpc) throw new Error("only gRPC is answered over HTTP/2 here");
        stream.respond(
          { ":status": 200, "content-type": "application/grpc+proto" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () =>
          stream.sendTrailers({ "grpc-status": "10", "grpc-message": "the etag is stale" }),
        );
        stream.end();
      } else if (how.answer === "one message, then nothing") {
        stream.respond({ ":status": 200, "content-type": headers["content-type"] });
        stream.write(EMPTY_MESSAGE);
      } else if (how.answer === "ok") {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc+proto" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(EMPTY_MESSAGE);
      }
    });
    this.#h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.resume();
      const how = this.behave(++this.requests);
      if ("cut" in how) {
        setTimeout(() => this.cut(how.cut), 30);
      } else if (how.answer === "aborted") {
        // The Connect protocol's unary error: HTTP 409 and a JSON body.
        res.writeHead(409, { "content-type": "application/json" });
        res.end(JSON.stringify({ code: "aborted", message: "the etag is stale" }));
      }
    });
  }

  async listen(): Promise<void> {
    for (const server of [this.#h2, this.#h1]) {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    }
  }

  url(http1: boolean): string {
    return `http://127.0.0.1:${((http1 ? this.#h1 : this.#h2).address() as AddressInfo).port}`;
  }

  /** Drops every connection, as the kernel does for a process killed with SIGKILL. */
  cut(how: Cut): void {
    for (const s of this.#sockets) how === "reset" ? s.resetAndDestroy() : s.destroy();
  }

  async close(): Promise<void> {
    this.cut("reset");
    await Promise.all([this.#h2, this.#h1].map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

const server = new DyingServer();
beforeAll(() => server.listen());
afterAll(() => server.close());

const protocols = [
  { name: "gRPC", protocol: "grpc", http1: false },
  { name: "Connect over HTTP/2", protocol: "connect", http1: false },
  { name: "gRPC-Web over HTTP/2", protocol: "grpc-web", http1: false },
  { name: "Connect over HTTP/1.1", protocol: "connect", http1: true },
  { name: "gRPC-Web over HTTP/1.1", protocol: "grpc-web", http1: true },
] as const;

function client(p: (typeof protocols)[number], extra: Partial<CofferClientOptions> = {}) {
  return createCofferClient({
    url: server.url(p.http1),
    protocol: p.protocol,
    ...(p.http1 && { httpVersion: "1.1" as const }),
    token: "t",
    timeoutMs: 5_000,
    ...extra,
  });
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

async function watchFailure(c: CofferClient): Promise<{ messages: number; err: ConnectError }> {
  let messages = 0;
  const err = await failure(
    (async () => {
      for await (const _ of c.watchSecrets({ projectId: "p" })) messages++;
    })(),
  );
  return { messages, err };
}

describe.each(protocols)("a call cut by a dying server, $name", (p) => {
  it.each(["close", "reset"] as const)("is UNAVAILABLE when the connection is %s", async (cut) => {
    server.behave = () => ({ cut });
    const err = await failure(client(p).getSecret({ secretId: SECRET_ID }));
    expect([Code[err.code], err.rawMessage]).toEqual(["Unavailable", err.rawMessage]);
  });
});

describe("a stream cut by a dying server", () => {
  it.each([
    ["gRPC", "close"],
    ["gRPC", "reset"],
    ["Connect over HTTP/2", "close"],
    ["Connect over HTTP/2", "reset"],
  ] as const)(
    "%s, connection %s after its first message: UNAVAILABLE from the stream",
    async (name, cut) => {
      const p = protocols.find((x) => x.name === name) as (typeof protocols)[number];
      server.behave = () => ({ cut, afterMessage: true });
      const { messages, err } = await watchFailure(client(p));
      expect(messages).toBe(1);
      expect(Code[err.code]).toBe("Unavailable");
    },
  );
});

describe("codes that are not a lost connection", () => {
  it("a server's ABORTED (a stale etag) stays ABORTED, over gRPC and over Connect", async () => {
    server.behave = () => ({ answer: "aborted" });
    for (const p of [protocols[0], protocols[3]]) {
      const err = await failure(client(p).getSecret({ secretId: SECRET_ID }));
      expect([p.name, Code[err.code], err.rawMessage]).toEqual([
        p.name,
        "Aborted",
        "the etag is stale",
      ]);
    }
  });

  // connect-es itself answers with the signal's reason once it is aborted, whatever
  // the transport said; these hold the contract, whichever layer keeps it.
  it("the caller's own cancel stays CANCELED, and its deadline DEADLINE_EXCEEDED", async () => {
    server.behave = () => ({ answer: "never" });
    for (const p of protocols) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 50);
      const cancelled = await failure(
        client(p).getSecret({ secretId: SECRET_ID }, { signal: abort.signal }),
      );
      clearTimeout(timer);
      const late = await failure(client(p, { timeoutMs: 100 }).getSecret({ secretId: SECRET_ID }));
      expect([p.name, Code[cancelled.code], Code[late.code]]).toEqual([
        p.name,
        "Canceled",
        "DeadlineExceeded",
      ]);
    }
  });

  it("the caller's cancel of a stream that is under way stays CANCELED", async () => {
    server.behave = () => ({ answer: "one message, then nothing" });
    for (const p of protocols.filter((x) => !x.http1)) {
      const abort = new AbortController();
      let messages = 0;
      const err = await failure(
        (async () => {
          const stream = client(p).watchSecrets({ projectId: "p" }, { signal: abort.signal });
          for await (const _ of stream) {
            messages++;
            abort.abort();
          }
        })(),
      );
      expect([p.name, messages, Code[err.code]]).toEqual([p.name, 1, "Canceled"]);
    }
  });
});

describe("with retries on", () => {
  it("a read cut by a dying server is sent again and succeeds", async () => {
    for (const cut of ["close", "reset"] as const) {
      server.requests = 0;
      server.behave = (n) => (n === 1 ? { cut } : { answer: "ok" });
      const c = client(protocols[0], { retry: { maxAttempts: 2, initialDelayMs: 1 } });
      await c.getSecret({ secretId: SECRET_ID });
      expect([cut, server.requests]).toEqual([cut, 2]);
    }
  });

  it("a write cut by a dying server is not sent again", async () => {
    server.requests = 0;
    server.behave = () => ({ cut: "close" });
    const c = client(protocols[0], { retry: { maxAttempts: 3, initialDelayMs: 1 } });
    const err = await failure(
      c.createSecretVersion({ secretId: SECRET_ID, data: Buffer.from("x") }),
    );
    expect([Code[err.code], server.requests]).toEqual(["Unavailable", 1]);
  });
});
