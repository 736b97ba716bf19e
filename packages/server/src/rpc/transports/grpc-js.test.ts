import {
  create,
  createFileRegistry,
  type DescMessage,
  type DescService,
  fromBinary,
  type Message,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  durationFromMs,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  timestampFromMs,
} from "@bufbuild/protobuf/wkt";
import { SecretSchema, SecretService, SecretType } from "@coffer/api";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addService } from "./grpc-js.ts";
import { peerKey } from "./peer.ts";

const protoDir = new URL("../../../../../proto", import.meta.url).pathname;

/** Resolves with the abort reason of a handler's signal, once aborted. */
interface AbortProbe {
  timeoutMs: number | undefined;
  reason: Promise<unknown>;
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A probe per secret id, so that concurrent tests do not mix their calls. */
const probes = new Map<string, ReturnType<typeof deferred<AbortProbe>>>();
function probe(id: string) {
  let d = probes.get(id);
  if (d === undefined) {
    d = deferred<AbortProbe>();
    probes.set(id, d);
  }
  return d;
}

/** Waits until the signal aborts, giving up after 5 s so a broken adapter fails rather than hangs. */
function aborted(ctx: HandlerContext): Promise<unknown> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("never aborted"), 5000);
    ctx.signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve(ctx.signal.reason);
      },
      { once: true },
    );
  });
}

const secretService: Partial<ServiceImpl<typeof SecretService>> = {
  getSecret(req, ctx) {
    return {
      secret: {
        id: req.secretId,
        region: req.region,
        name: ctx.protocolName,
        path: ctx.url,
        description: ctx.values.get(peerKey) ?? "no peer",
        type: SecretType.KEY_VALUE,
        tags: ["a", "b"],
        versionCount: 3,
        ephemeralPolicy: { timeToLive: durationFromMs(90_000), expiresOnceAccessed: true },
        createdAt: timestampFromMs(1_700_000_000_000),
      },
    };
  },
  accessSecretVersion(req) {
    throw new ConnectError(`secret ${req.secretId} not found`, Code.NotFound, {
      "x-request-id": "req-1",
    });
  },
  accessSecretVersionByPath() {
    throw new ConnectError("bad path", Code.InvalidArgument, undefined, [
      { desc: SecretSchema, value: { name: "detail" } },
    ]);
  },
  deleteSecret() {
    throw new Error("boom with sensitive text");
  },
  updateSecret() {
    // uint32 cannot hold -1: encoding the response fails after the handler returned.
    return { secret: { versionCount: -1 } };
  },
  listTags(_req, ctx) {
    ctx.responseHeader.set("x-coffer-header", "h1");
    ctx.responseTrailer.set("x-coffer-trailer", "t1");
    ctx.responseTrailer.set("x-coffer-bin", Buffer.from([9, 8, 7]).toString("base64"));
    // A stray status trailer must not override the real status.
    ctx.responseTrailer.set("grpc-status", "13");
    return {
      tags: [
        ctx.requestHeader.get("authorization") ?? "none",
        ctx.requestHeader.get("x-trace-bin") ?? "none",
      ],
      totalCount: 2n,
    };
  },
  async getSecretVersion(req, ctx) {
    const d = probe(req.secretId);
    d.resolve({ timeoutMs: ctx.timeoutMs(), reason: aborted(ctx) });
    throw await (await d.promise).reason;
  },
  // Reads its signal only when told to: the adapter makes the signal at the
  // first read, which must still show what happened before it.
  async enableSecretVersion(req, ctx) {
    const late = lateReads.get(req.secretId);
    if (late === undefined) throw new Error(`no late read for ${req.secretId}`);
    late.entered.resolve(ctx);
    await late.read.promise;
    late.seen.resolve({ aborted: ctx.signal.aborted, reason: ctx.signal.reason });
    return {};
  },
};

/** A handler that reads its signal late: when it entered, when to read, what it saw. */
const lateReads = new Map<
  string,
  {
    entered: ReturnType<typeof deferred<HandlerContext>>;
    read: ReturnType<typeof deferred<void>>;
    seen: ReturnType<typeof deferred<{ aborted: boolean; reason: unknown }>>;
  }
>();
function lateRead(id: string) {
  const late = {
    entered: deferred<HandlerContext>(),
    read: deferred<void>(),
    seen: deferred<{ aborted: boolean; reason: unknown }>(),
  };
  lateReads.set(id, late);
  return late;
}

async function listen(register: (server: grpc.Server) => void) {
  const server = new grpc.Server();
  register(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return { server, address: `127.0.0.1:${port}` };
}

interface Outcome<T> {
  response: T | undefined;
  status: grpc.StatusObject;
  header: grpc.Metadata | undefined;
}

/** Makes a unary call and waits for both its callback and its status. */
function unary<Req, Res>(
  client: grpc.Client,
  method: grpc.MethodDefinition<Req, Res>,
  request: Req,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
  onCall?: (call: grpc.ClientUnaryCall) => void,
): Promise<Outcome<Res>> {
  return new Promise((resolve) => {
    let response: Res | undefined;
    let header: grpc.Metadata | undefined;
    let status: grpc.StatusObject | undefined;
    let pending = 2;
    const settle = () => {
      pending -= 1;
      if (pending === 0 && status !== undefined) {
        resolve({ response, status, header });
      }
    };
    const call = client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadata,
      options,
      (_err, value) => {
        response = value;
        settle();
      },
    );
    call.on("metadata", (m: grpc.Metadata) => {
      header = m;
    });
    call.on("status", (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
    onCall?.(call);
  });
}

/** The plain objects proto-loader decodes responses to, as far as the tests read them. */
interface Decoded {
  secret?: { description?: string };
  tags?: string[];
}

describe("grpc-js adapter, SecretService through a proto-loader client", () => {
  let server: grpc.Server;
  let client: grpc.Client;
  let methods: Record<string, grpc.MethodDefinition<object, Decoded>>;
  const call = (
    name: string,
    request: object,
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
    onCall?: (c: grpc.ClientUnaryCall) => void,
  ): Promise<Outcome<Decoded>> => {
    const method = methods[name];
    if (method === undefined) throw new Error(`no method ${name}`);
    return unary(client, method, request, metadata, options, onCall);
  };

  beforeAll(async () => {
    const definition = protoLoader.loadSync("coffer/secretmanager/v1/secret_service.proto", {
      includeDirs: [protoDir],
      longs: String,
      enums: String,
      defaults: true,
    });
    methods = definition["coffer.secretmanager.v1.SecretService"] as typeof methods;
    const started = await listen((s) => addService(s, SecretService, secretService));
    server = started.server;
    const Client = grpc.makeClientConstructor(methods, "SecretService");
    client = new Client(started.address, grpc.credentials.createInsecure());
  });

  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it("round-trips a unary call and gives the handler a gRPC context", async () => {
    const { status, response } = await call("GetSecret", { region: "eu", secretId: "abc" });
    expect(status.code).toBe(grpc.status.OK);
    expect(response?.secret).toMatchObject({
      id: "abc",
      region: "eu",
      name: "grpc",
      path: "/coffer.secretmanager.v1.SecretService/GetSecret",
      type: "SECRET_TYPE_KEY_VALUE",
      tags: ["a", "b"],
      versionCount: 3,
      ephemeralPolicy: { timeToLive: { seconds: "90" }, expiresOnceAccessed: true },
      createdAt: { seconds: "1700000000" },
    });
    expect(response?.secret?.description).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("sends a ConnectError's code, message and metadata", async () => {
    const { status } = await call("AccessSecretVersion", { secretId: "xyz" });
    expect(status.code).toBe(grpc.status.NOT_FOUND);
    expect(status.details).toBe("secret xyz not found");
    expect(status.metadata.get("x-request-id")).toEqual(["req-1"]);
  });

  it("sends a ConnectError's details as grpc-status-details-bin", async () => {
    const { status } = await call("AccessSecretVersionByPath", {});
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    const bin = status.metadata.get("grpc-status-details-bin")[0];
    expect(bin).toBeInstanceOf(Buffer);
    const headers = new Headers({ "grpc-status-details-bin": (bin as Buffer).toString("base64") });
    const error = findTrailerError(headers);
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.findDetails(SecretSchema).map((s) => s.name)).toEqual(["detail"]);
  });

  it("hides any other error behind INTERNAL", async () => {
    const { status } = await call("DeleteSecret", { secretId: "abc" });
    expect(status.code).toBe(grpc.status.INTERNAL);
    expect(status.details).toBe("internal error");
    expect(JSON.stringify(status.metadata.toJSON())).not.toContain("sensitive");
  });

  it("answers INTERNAL when the response cannot be encoded", async () => {
    const { status } = await call("UpdateSecret", { secretId: "abc" });
    expect(status.code).toBe(grpc.status.INTERNAL);
    expect(status.details).toBe("internal error");
  });

  it("answers UNIMPLEMENTED for a method the implementation leaves out", async () => {
    const { status } = await call("CreateSecret", {});
    expect(status.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(status.details).toBe(
      "coffer.secretmanager.v1.SecretService.CreateSecret is not implemented",
    );
  });

  it("passes metadata in as headers and sends response headers and trailers", async () => {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", "Bearer t0ken");
    metadata.set("x-trace-bin", Buffer.from([1, 2, 3]));
    const { status, response, header } = await call("ListTags", {}, metadata);
    expect(status.code).toBe(grpc.status.OK);
    expect(response?.tags).toEqual(["Bearer t0ken", Buffer.from([1, 2, 3]).toString("base64")]);
    expect(header?.get("x-coffer-header")).toEqual(["h1"]);
    expect(status.metadata.get("x-coffer-trailer")).toEqual(["t1"]);
    expect(status.metadata.get("x-coffer-bin")).toEqual([Buffer.from([9, 8, 7])]);
  });

  it("answers INVALID_ARGUMENT to a request that does not decode", async () => {
    const method = methods.GetSecret;
    if (method === undefined) throw new Error("no GetSecret");
    const identity = (b: Buffer) => b;
    const raw: grpc.MethodDefinition<Buffer, Buffer> = {
      path: method.path,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
    const { status } = await unary(client, raw, Buffer.from([0xff, 0xff]));
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toBe(
      "request is not a valid coffer.secretmanager.v1.GetSecretRequest message",
    );
  });

  it("ends a call past its deadline with DEADLINE_EXCEEDED and aborts the handler's signal", async () => {
    const started = Date.now();
    const { status } = await call(
      "GetSecretVersion",
      { secretId: "deadline" },
      new grpc.Metadata(),
      { deadline: Date.now() + 200 },
    );
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const seen = await probe("deadline").promise;
    expect(seen.timeoutMs).toBeGreaterThan(0);
    expect(seen.timeoutMs).toBeLessThanOrEqual(200);
    const reason = await seen.reason;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("aborts the handler's signal when the client cancels", async () => {
    const { status } = await call(
      "GetSecretVersion",
      { secretId: "cancel" },
      undefined,
      undefined,
      (c) => {
        void probe("cancel").promise.then(() => c.cancel());
      },
    );
    expect(status.code).toBe(grpc.status.CANCELLED);
    const seen = await probe("cancel").promise;
    expect(seen.timeoutMs).toBeUndefined();
    const reason = await seen.reason;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Canceled);
  });

  it("shows a cancel that came before the handler first read its signal", async () => {
    const late = lateRead("late-cancel");
    const { status } = await call(
      "EnableSecretVersion",
      { secretId: "late-cancel" },
      undefined,
      undefined,
      (c) => {
        void late.entered.promise.then(() => c.cancel());
      },
    );
    expect(status.code).toBe(grpc.status.CANCELLED);
    // The server hears of the cancel a moment after the client's status.
    await new Promise((r) => setTimeout(r, 100));
    late.read.resolve();
    const seen = await late.seen.promise;
    expect(seen.aborted).toBe(true);
    expect((seen.reason as ConnectError).code).toBe(Code.Canceled);
    expect((seen.reason as ConnectError).rawMessage).toBe("the client canceled the call");
  });

  it("shows a call as over to a signal first read after it ended", async () => {
    const late = lateRead("late-over");
    late.read.resolve();
    const { status } = await call("EnableSecretVersion", { secretId: "late-over" });
    expect(status.code).toBe(grpc.status.OK);
    expect(await late.seen.promise).toEqual({ aborted: false, reason: undefined });
    const ctx = await late.entered.promise;
    expect(ctx.signal.aborted).toBe(true);
    expect((ctx.signal.reason as ConnectError).rawMessage).toBe("the call is over");
  });
});

describe("grpc-js adapter, shutdown", () => {
  const shutdown = new AbortController();
  let server: grpc.Server;
  let client: grpc.Client;
  let method: grpc.MethodDefinition<object, unknown>;

  beforeAll(async () => {
    const definition = protoLoader.loadSync("coffer/secretmanager/v1/secret_service.proto", {
      includeDirs: [protoDir],
    });
    const service = definition["coffer.secretmanager.v1.SecretService"] as grpc.ServiceDefinition;
    method = mustGet(service.GetSecretVersion, "GetSecretVersion");
    const started = await listen((s) =>
      addService(s, SecretService, secretService, { shutdownSignal: shutdown.signal }),
    );
    server = started.server;
    client = new grpc.Client(started.address, grpc.credentials.createInsecure());
  });

  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it("aborts the signal of calls in flight when the shutdown signal aborts", async () => {
    void probe("shutdown").promise.then(() =>
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable)),
    );
    const { status } = await unary(client, method, { secretId: "shutdown" });
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(status.details).toBe("server is shutting down");
  });
});

/**
 * No Coffer RPC streams yet, so the streaming tests serve a service built
 * from a hand-made descriptor: Count streams `count` messages carrying
 * `size` bytes each, then fails as `fail` says ("", "connect" or "plain");
 * with `endless` it streams until cancelled.
 */
const testFile = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "test/v1/count.proto",
    package: "test.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "CountRequest",
        field: [
          field("count", 1, FieldDescriptorProto_Type.UINT32),
          field("fail", 2, FieldDescriptorProto_Type.STRING),
          field("size", 3, FieldDescriptorProto_Type.UINT32),
          field("endless", 4, FieldDescriptorProto_Type.BOOL),
        ],
      },
      {
        name: "CountResponse",
        field: [
          field("n", 1, FieldDescriptorProto_Type.UINT32),
          field("payload", 2, FieldDescriptorProto_Type.BYTES),
        ],
      },
    ],
    service: [
      {
        name: "CountService",
        method: [
          {
            name: "Count",
            inputType: ".test.v1.CountRequest",
            outputType: ".test.v1.CountResponse",
            serverStreaming: true,
          },
        ],
      },
      {
        name: "ChatService",
        method: [
          {
            name: "Chat",
            inputType: ".test.v1.CountRequest",
            outputType: ".test.v1.CountResponse",
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  }),
  () => undefined,
);

function field(name: string, number: number, type: FieldDescriptorProto_Type) {
  return { name, number, type, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: name };
}

function mustGet<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`missing ${what}`);
  return value;
}

const countService: DescService = mustGet(testFile.getService("test.v1.CountService"), "service");
const chatService: DescService = mustGet(testFile.getService("test.v1.ChatService"), "service");
const countRequest: DescMessage = mustGet(testFile.getMessage("test.v1.CountRequest"), "request");
const countResponse: DescMessage = mustGet(
  testFile.getMessage("test.v1.CountResponse"),
  "response",
);

type CountRequest = Message & { count: number; fail: string; size: number; endless: boolean };
type CountResponse = Message & { n: number; payload: Uint8Array };

/** What the Count handler did, for the tests to observe. */
const countState = { produced: 0, finished: deferred<AbortSignal>() };

const countImpl = {
  async *count(req: CountRequest, ctx: HandlerContext) {
    countState.produced = 0;
    ctx.responseHeader.set("x-stream-header", "sh");
    try {
      for (let n = 1; req.endless || n <= req.count; n++) {
        if (req.endless) await new Promise((r) => setTimeout(r, 5));
        countState.produced = n;
        yield { n, payload: new Uint8Array(req.size) };
      }
      if (req.fail === "connect") {
        throw new ConnectError("stopped early", Code.FailedPrecondition, { "x-why": "test" });
      }
      if (req.fail === "plain") throw new Error("sensitive stream failure");
      ctx.responseTrailer.set("x-stream-trailer", "st");
    } finally {
      countState.finished.resolve(ctx.signal);
    }
  },
};

interface StreamOutcome {
  messages: CountResponse[];
  header: grpc.Metadata | undefined;
  status: grpc.StatusObject;
}

function countStream(
  client: grpc.Client,
  init: MessageInitShape<DescMessage> & Partial<CountRequest>,
  onStream?: (stream: grpc.ClientReadableStream<CountResponse>) => void,
): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const messages: CountResponse[] = [];
    let header: grpc.Metadata | undefined;
    const stream = client.makeServerStreamRequest(
      "/test.v1.CountService/Count",
      (m: MessageInitShape<DescMessage>) =>
        Buffer.from(toBinary(countRequest, create(countRequest, m))),
      (b: Buffer) => fromBinary(countResponse, b) as CountResponse,
      init,
      new grpc.Metadata(),
      {},
    );
    stream.on("metadata", (m: grpc.Metadata) => {
      header = m;
    });
    stream.on("data", (m: CountResponse) => messages.push(m));
    // A non-OK status is also emitted as "error"; "status" carries it too.
    stream.on("error", () => {});
    stream.on("status", (status: grpc.StatusObject) => resolve({ messages, header, status }));
    onStream?.(stream);
  });
}

describe("grpc-js adapter, server streaming", () => {
  let server: grpc.Server;
  let client: grpc.Client;

  beforeAll(async () => {
    const started = await listen((s) =>
      addService(s, countService, countImpl as unknown as ServiceImpl<typeof countService>),
    );
    server = started.server;
    client = new grpc.Client(started.address, grpc.credentials.createInsecure());
  });

  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it("streams every message, then headers, trailers and OK", async () => {
    const { messages, header, status } = await countStream(client, { count: 3 });
    expect(messages.map((m) => m.n)).toEqual([1, 2, 3]);
    expect(header?.get("x-stream-header")).toEqual(["sh"]);
    expect(status.code).toBe(grpc.status.OK);
    expect(status.metadata.get("x-stream-trailer")).toEqual(["st"]);
  });

  it("ends with a ConnectError's status after the messages already sent", async () => {
    const { messages, status } = await countStream(client, { count: 2, fail: "connect" });
    expect(messages.map((m) => m.n)).toEqual([1, 2]);
    expect(status.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(status.details).toBe("stopped early");
    expect(status.metadata.get("x-why")).toEqual(["test"]);
  });

  it("hides any other error behind INTERNAL", async () => {
    const { messages, status } = await countStream(client, { count: 1, fail: "plain" });
    expect(messages.map((m) => m.n)).toEqual([1]);
    expect(status.code).toBe(grpc.status.INTERNAL);
    expect(status.details).toBe("internal error");
  });

  it("stops the generator and aborts its signal when the client cancels", async () => {
    countState.finished = deferred<AbortSignal>();
    const { status } = await countStream(client, { endless: true }, (stream) => {
      stream.on("data", (m: CountResponse) => {
        if (m.n === 3) stream.cancel();
      });
    });
    expect(status.code).toBe(grpc.status.CANCELLED);
    const signal = await countState.finished.promise;
    expect(signal.aborted).toBe(true);
    expect((signal.reason as ConnectError).code).toBe(Code.Canceled);
    const produced = countState.produced;
    await new Promise((r) => setTimeout(r, 50));
    expect(countState.produced).toBe(produced);
  });

  it("pulls from the generator only as fast as the client reads", async () => {
    const count = 1000;
    const size = 64 * 1024;
    let paused = 0;
    const outcome = await countStream(client, { count, size }, (stream) => {
      stream.pause();
      setTimeout(() => {
        paused = countState.produced;
        stream.resume();
      }, 300);
    });
    // 64 MiB would be buffered in the server without backpressure; with it,
    // the HTTP/2 windows and grpc-js's stream buffer hold a few messages.
    expect(paused).toBeGreaterThan(0);
    expect(paused).toBeLessThan(100);
    expect(outcome.status.code).toBe(grpc.status.OK);
    expect(outcome.messages).toHaveLength(count);
  });

  it("refuses a service with a client- or bidi-streaming method", () => {
    const s = new grpc.Server();
    expect(() => addService(s, chatService, {})).toThrow(
      "test.v1.ChatService.Chat is bidi_streaming: the grpc-js adapter serves only unary and server-streaming methods",
    );
  });
});

describe("status codes", () => {
  it("connect's Code enum uses gRPC's numbers", () => {
    const names = Object.keys(Code).filter((k) => Number.isNaN(Number(k)));
    expect(names).toHaveLength(16);
    for (const name of names) {
      const grpcName =
        name === "Canceled" ? "CANCELLED" : name.replace(/(?<!^)([A-Z])/g, "_$1").toUpperCase();
      expect([name, Code[name as keyof typeof Code]]).toEqual([
        name,
        grpc.status[grpcName as keyof typeof grpc.status],
      ]);
    }
  });
});
