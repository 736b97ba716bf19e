import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  type DescMessage,
  type DescMethod,
  fromBinary,
  fromJson,
  type JsonValue,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { AdminService, AuthService } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A scripted server for the CLI's tests of methods a test server cannot
 * answer yet or should not need: AdminService and AuthService unary calls
 * over the Connect protocol (HTTP/2 without TLS, binary or JSON), each
 * answered by a handler given by method name, each recorded with its
 * authorization header. Not part of the CLI.
 */

/** One call the fake received. */
export interface FakeCall {
  /** "CreateTrustedIssuer", "ExchangeToken"... */
  method: string;
  message: Record<string, unknown>;
  /** The authorization header, or "" without one. */
  authorization: string;
}

/** Answers a call: the response in the proto JSON mapping, or an error. */
type Handler = (message: Record<string, unknown>, call: FakeCall) => object | ConnectError;

/** A running fake. */
export interface FakeAdmin {
  url: string;
  calls: FakeCall[];
  /** Answers `method` with `handler` from now on. */
  on(method: string, handler: Handler): void;
  close(): Promise<void>;
}

const STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.Unimplemented]: 501,
};

/** Starts a fake on 127.0.0.1, on a free port; unknown methods are UNIMPLEMENTED. */
export async function startFakeAdmin(): Promise<FakeAdmin> {
  const methods = new Map<string, DescMethod>();
  for (const service of [AdminService, AuthService]) {
    for (const m of service.methods) methods.set(`/${service.typeName}/${m.name}`, m);
  }
  const handlers = new Map<string, Handler>();
  const calls: FakeCall[] = [];
  const server = http2.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const json = String(req.headers["content-type"]).includes("json");
    const fail = (err: ConnectError) => {
      res.writeHead(STATUS[err.code] ?? 500, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          code: Code[err.code].replace(/[A-Z]/g, (c, i) => `${i ? "_" : ""}${c.toLowerCase()}`),
          message: err.rawMessage,
        }),
      );
    };
    const method = methods.get(req.url ?? "");
    if (method === undefined) return fail(new ConnectError("no such method", Code.Unimplemented));
    const input: DescMessage = method.input;
    const message = json
      ? fromJson(input, JSON.parse(body.toString("utf8") || "{}"))
      : fromBinary(input, body);
    const call: FakeCall = {
      method: method.name,
      message: toJson(input, message) as Record<string, unknown>,
      authorization: String(req.headers.authorization ?? ""),
    };
    calls.push(call);
    const handler = handlers.get(method.name);
    const out =
      handler === undefined
        ? new ConnectError(`${method.name} is not scripted`, Code.Unimplemented)
        : handler(call.message, call);
    if (out instanceof ConnectError) return fail(out);
    let answer: ReturnType<typeof fromJson>;
    try {
      answer = fromJson(method.output, out as JsonValue);
    } catch (err) {
      return fail(
        new ConnectError(`bad scripted answer: ${(err as Error).message}`, Code.Internal),
      );
    }
    res.writeHead(200, { "content-type": json ? "application/json" : "application/proto" });
    res.end(
      json
        ? JSON.stringify(toJson(method.output, answer))
        : Buffer.from(toBinary(method.output, answer)),
    );
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    on: (method, handler) => {
      handlers.set(method, handler);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A client's idle HTTP/2 session would hold the server open.
        for (const s of sessions) s.destroy();
      }),
  };
}
