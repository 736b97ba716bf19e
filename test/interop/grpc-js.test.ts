import { randomBytes, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { type Message, method } from "./support/proto.ts";

/**
 * A client that knows nothing of Coffer's TypeScript: plain @grpc/grpc-js,
 * with the messages loaded at run time from the .proto files by
 * @grpc/proto-loader, against the gRPC port of a real server process.
 */

/** The outcome of one unary call: exactly one of response and error is set. */
type Outcome = { response: Message; error?: undefined } | { error: grpc.ServiceError };

function call(client: grpc.Client, name: string, request: Message): Promise<Outcome> {
  const m = method(name);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + 30_000 },
      (error, response) => {
        if (error) resolve({ error });
        else if (response === undefined) reject(new Error(`${name}: no error and no response`));
        else resolve({ response });
      },
    );
  });
}

async function ok(client: grpc.Client, name: string, request: Message): Promise<Message> {
  const outcome = await call(client, name, request);
  if (outcome.error) {
    throw new Error(`${name} failed: ${grpc.status[outcome.error.code]} ${outcome.error.details}`);
  }
  return outcome.response;
}

/**
 * Sends `authorization: Bearer <token>` with every call of a client, as a
 * grpc-js user would on a cleartext channel (call credentials need TLS).
 */
function bearer(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

async function failure(
  client: grpc.Client,
  name: string,
  request: Message,
): Promise<grpc.ServiceError> {
  const outcome = await call(client, name, request);
  if (!outcome.error) throw new Error(`${name} succeeded: ${JSON.stringify(outcome.response)}`);
  return outcome.error;
}

/**
 * A WatchSecrets stream read one message at a time, as received, with the
 * raw bytes of each message kept for assertions on what went over the wire.
 */
class WatchStream {
  readonly raw: Buffer[] = [];
  readonly #call: grpc.ClientReadableStream<Message>;
  readonly #queue: Message[] = [];
  #end: grpc.ServiceError | "end" | undefined;
  #wake: (() => void) | undefined;

  constructor(client: grpc.Client, request: Message) {
    const m = method("WatchSecrets");
    this.#call = client.makeServerStreamRequest(
      m.path,
      m.requestSerialize,
      (bytes: Buffer) => {
        this.raw.push(Buffer.from(bytes));
        return m.responseDeserialize(bytes);
      },
      request,
      new grpc.Metadata(),
      {},
    );
    this.#call.on("data", (message: Message) => {
      this.#queue.push(message);
      this.#wake?.();
    });
    this.#call.on("error", (error: grpc.ServiceError) => {
      this.#end ??= error;
      this.#wake?.();
    });
    this.#call.on("end", () => {
      this.#end ??= "end";
      this.#wake?.();
    });
  }

  /** The next message; rejects when the stream ends first or nothing comes in `timeoutMs`. */
  async next(timeoutMs = 30_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.#queue.shift();
      if (message !== undefined) return message;
      if (this.#end === "end") throw new Error("the stream ended");
      if (this.#end !== undefined) {
        throw new Error(`the stream failed: ${grpc.status[this.#end.code]} ${this.#end.details}`);
      }
      if (Date.now() >= deadline) throw new Error(`no message within ${timeoutMs} ms`);
      await this.#wait(deadline);
    }
  }

  /** The next message that is not a heartbeat. */
  async nextEvent(timeoutMs = 30_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.next(Math.max(1, deadline - Date.now()));
      if (message.kind !== "WATCH_EVENT_KIND_HEARTBEAT") return message;
    }
  }

  /** How the stream ended, once it has: its error, or "end" for OK. */
  async ended(timeoutMs = 30_000): Promise<grpc.ServiceError | "end"> {
    const deadline = Date.now() + timeoutMs;
    while (this.#end === undefined) {
      if (Date.now() >= deadline) throw new Error(`the stream did not end within ${timeoutMs} ms`);
      await this.#wait(deadline);
    }
    return this.#end;
  }

  /** Until something arrives or ends, or `deadline` passes. */
  #wait(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.#wake = done;
    });
  }

  cancel(): void {
    this.#call.cancel();
  }
}

/** An event's occurred_at (a google.protobuf.Timestamp), in milliseconds. */
function millis(event: Message): number {
  const at = event.occurred_at as { seconds: string; nanos: number } | null;
  if (at === null) throw new Error(`no occurred_at in ${JSON.stringify(event)}`);
  return Number(at.seconds) * 1000 + at.nanos / 1e6;
}

describe("plain @grpc/grpc-js client with proto-loader", () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  let client: grpc.Client;
  let projectId = "";

  beforeAll(async () => {
    dataDir = await makeTempDir("grpc-js");
    server = await startServer({ env: { COFFER_DATA_DIR: dataDir } });
    projectId = await server.createProject();
    client = new grpc.Client(server.grpcAddress, grpc.credentials.createInsecure(), {
      interceptors: [bearer(server.token)],
    });
  });

  afterAll(async () => {
    client?.close();
    const exit = await server?.stop();
    await removeTempDir(dataDir);
    // Checked last, so that a failing stop still cleans up.
    if (exit) expect(exit).toEqual({ code: 0, signal: null });
  });

  it("creates a key_value secret and reads the payload back byte for byte", async () => {
    // Not what JSON.stringify would write: odd spacing, escapes, a number
    // with a trailing zero and multi-byte UTF-8, so that a server that
    // re-serialised the JSON, or re-encoded the text, would be caught.
    const payload = Buffer.from(
      '{ "user" : "r\\u00e9mi",\t"password":"p\u00e4ss\u{1F511}w\\"rd" , "port": 5432.0,\n"tls": true }',
      "utf8",
    );
    const created = await ok(client, "CreateSecret", {
      project_id: projectId,
      name: "db",
      path: "/interop/grpc-js",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: payload },
    });
    const secret = created.secret as Message;
    const first = created.first_version as Message;
    expect(secret.name).toBe("db");
    expect(secret.path).toBe("/interop/grpc-js");
    expect(secret.type).toBe("SECRET_TYPE_KEY_VALUE");
    expect(first.revision).toBe(1);
    expect(first.status).toBe("VERSION_STATUS_ENABLED");
    // The checksum travels only with the payload (issue 11 item 3): 0 is unset.
    expect(first.data_crc32 ?? 0).toBe(0);

    const accessed = await ok(client, "AccessSecretVersion", {
      secret_id: secret.id,
      revision: "latest_enabled",
    });
    expect(accessed.secret_id).toBe(secret.id);
    expect(accessed.revision).toBe(1);
    expect(accessed.type).toBe("SECRET_TYPE_KEY_VALUE");
    expect(Buffer.isBuffer(accessed.data)).toBe(true);
    expect((accessed.data as Buffer).equals(payload)).toBe(true);
    expect(accessed.data_crc32).toBe(crc32(payload));
  });

  it("round-trips arbitrary bytes in an opaque secret, with a client-side checksum", async () => {
    // Every byte value, including NUL and invalid UTF-8, then random bytes up
    // to the 64 KiB limit.
    const payload = Buffer.concat([
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      randomBytes(65_536 - 256),
    ]);
    const created = await ok(client, "CreateSecret", {
      project_id: projectId,
      name: "blob",
      path: "/interop/grpc-js",
      first_version: { data: payload, data_crc32: crc32(payload) },
    });
    const secret = created.secret as Message;
    expect(secret.type).toBe("SECRET_TYPE_OPAQUE");
    const accessed = await ok(client, "AccessSecretVersion", {
      secret_id: secret.id,
      revision: "1",
    });
    expect((accessed.data as Buffer).equals(payload)).toBe(true);
    expect(accessed.data_crc32).toBe(crc32(payload));
  });

  it("refuses a payload that breaks its type with INVALID_ARGUMENT naming the field", async () => {
    const error = await failure(client, "CreateSecret", {
      project_id: projectId,
      name: "nested",
      path: "/interop/grpc-js",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: Buffer.from('{"db": {"host": "h"}}') },
    });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain("first_version.data.db");

    // Nothing was stored: the same name is still free.
    const retried = await ok(client, "CreateSecret", {
      project_id: projectId,
      name: "nested",
      path: "/interop/grpc-js",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: Buffer.from('{"host": "h"}') },
    });
    expect((retried.secret as Message).name).toBe("nested");
  });

  it("refuses a checksum that does not match with INVALID_ARGUMENT naming the field", async () => {
    const payload = Buffer.from("checksummed");
    const error = await failure(client, "CreateSecret", {
      project_id: projectId,
      name: "crc",
      path: "/interop/grpc-js",
      first_version: { data: payload, data_crc32: (crc32(payload) + 1) >>> 0 },
    });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain("first_version.data_crc32");
  });

  it("refuses a call without a token with UNAUTHENTICATED, and stores nothing", async () => {
    if (server === undefined) throw new Error("no server");
    const anonymous = new grpc.Client(server.grpcAddress, grpc.credentials.createInsecure());
    const request = {
      project_id: projectId,
      name: "anonymous",
      path: "/interop/grpc-js",
      first_version: { data: Buffer.from("written without a token") },
    };
    try {
      const error = await failure(anonymous, "CreateSecret", request);
      expect(error.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(error.code).toBe(16);
    } finally {
      anonymous.close();
    }
    // Nothing was stored: the same name is still free to the admin.
    const created = await ok(client, "CreateSecret", request);
    expect((created.secret as Message).name).toBe("anonymous");
  });

  it("answers NOT_FOUND for a secret that does not exist", async () => {
    const error = await failure(client, "AccessSecretVersion", {
      secret_id: randomUUID(),
      revision: "latest_enabled",
    });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
  });

  describe("WatchSecrets, a server stream", () => {
    const path = "/interop/grpc-js/watch";
    // Distinctive payloads, to look for in the raw bytes of every event.
    const payloads = [1, 2, 3, 4, 5].map((n) =>
      Buffer.from(`{"token": "w${n}-${randomBytes(12).toString("hex")}"}`),
    );
    let secretId = "";
    /** The cursor of the VERSION_CREATED for revision 2, seen live. */
    let secondCursor = "";
    const streams: WatchStream[] = [];
    const watch = (request: Message, watchClient = client) => {
      const stream = new WatchStream(watchClient, request);
      streams.push(stream);
      return stream;
    };

    afterAll(() => {
      for (const stream of streams) stream.cancel();
    });

    const addVersion = async (revision: number) => {
      const res = await ok(client, "CreateSecretVersion", {
        secret_id: secretId,
        data: payloads[revision - 1],
      });
      expect((res.version as Message).revision).toBe(revision);
    };

    it("starts with a heartbeat, then delivers VERSION_CREATED for a version created by another call", async () => {
      const created = await ok(client, "CreateSecret", {
        project_id: projectId,
        name: "watched",
        path,
        type: "SECRET_TYPE_KEY_VALUE",
        first_version: { data: payloads[0] },
      });
      secretId = String((created.secret as Message).id);

      const stream = watch({
        project_id: projectId,
        selectors: [{ path_prefix: path }],
        heartbeat_interval: { seconds: 1 },
      });
      const start = await stream.next();
      expect(start.kind).toBe("WATCH_EVENT_KIND_HEARTBEAT");
      expect(start.cursor).toMatch(/\S/);
      expect(start.occurred_at).not.toBeNull();
      expect(start.secret_id).toBe("");

      await addVersion(2);
      // The stream starts from now: the creation and version 1, committed
      // before it opened, are not reported.
      const event = await stream.nextEvent();
      expect(event).toMatchObject({
        kind: "WATCH_EVENT_KIND_VERSION_CREATED",
        secret_id: secretId,
        project_id: projectId,
        path,
        name: "watched",
        revision: 2,
        version_status: "VERSION_STATUS_ENABLED",
        single_access: false,
        previous_location: null,
      });
      expect(event.cursor).toMatch(/\S/);
      expect(event.cursor).not.toBe(start.cursor);
      secondCursor = String(event.cursor);
      // Events never carry payloads: not in any field, not in the bytes.
      for (const bytes of stream.raw) {
        for (const payload of payloads) expect(bytes.includes(payload)).toBe(false);
      }
    });

    it("resumes after since_cursor: what it missed, once and in order, then live events", async () => {
      expect(secondCursor).not.toBe("");
      // Changes while nobody watches.
      await addVersion(3);
      await addVersion(4);
      await ok(client, "DisableSecretVersion", { secret_id: secretId, revision: "2" });

      const stream = watch({
        project_id: projectId,
        selectors: [{ secret_id: secretId }],
        since_cursor: secondCursor,
        heartbeat_interval: { seconds: 1 },
      });
      const start = await stream.next();
      expect(start.kind).toBe("WATCH_EVENT_KIND_HEARTBEAT");
      expect(start.cursor).toBe(secondCursor);

      // Exactly the three changes after the cursor; version 2's creation,
      // which the cursor covers, is not repeated.
      const missed = [await stream.nextEvent(), await stream.nextEvent(), await stream.nextEvent()];
      expect(missed.map((e) => [e.kind, e.revision, e.version_status])).toEqual([
        ["WATCH_EVENT_KIND_VERSION_CREATED", 3, "VERSION_STATUS_ENABLED"],
        ["WATCH_EVENT_KIND_VERSION_CREATED", 4, "VERSION_STATUS_ENABLED"],
        ["WATCH_EVENT_KIND_VERSION_DISABLED", 2, "VERSION_STATUS_DISABLED"],
      ]);
      const cursors = missed.map((e) => String(e.cursor));
      expect(new Set([secondCursor, ...cursors]).size).toBe(4);

      // Then it follows live changes.
      await addVersion(5);
      const live = await stream.nextEvent();
      expect(live).toMatchObject({
        kind: "WATCH_EVENT_KIND_VERSION_CREATED",
        secret_id: secretId,
        revision: 5,
      });
      expect(cursors).not.toContain(live.cursor);

      // A quiet stream sends a heartbeat after each heartbeat_interval (1 s
      // here), holding the cursor it stands at: the last event's.
      const first = await stream.next(15_000);
      const second = await stream.next(15_000);
      for (const heartbeat of [first, second]) {
        expect(heartbeat.kind).toBe("WATCH_EVENT_KIND_HEARTBEAT");
        expect(heartbeat.cursor).toBe(live.cursor);
      }
      // Timed by the server's clock (occurred_at), so that a slow test
      // runner cannot make the gaps look shorter or longer than they were:
      // not sooner than the interval (with room for timer rounding), and
      // not so late that a watcher would think the stream dead.
      const gaps = [millis(first) - millis(live), millis(second) - millis(first)];
      for (const gap of gaps) {
        expect(gap).toBeGreaterThanOrEqual(950);
        expect(gap).toBeLessThan(10_000);
      }
    });

    it("ends a stream without a token with UNAUTHENTICATED", async () => {
      if (server === undefined) throw new Error("no server");
      const anonymous = new grpc.Client(server.grpcAddress, grpc.credentials.createInsecure());
      try {
        const stream = watch({ project_id: projectId }, anonymous);
        const end = await stream.ended();
        expect(end === "end" ? "OK" : grpc.status[end.code]).toBe("UNAUTHENTICATED");
      } finally {
        anonymous.close();
      }
    });

    it("ends a stream with INVALID_ARGUMENT naming a bad heartbeat_interval or since_cursor", async () => {
      const short = watch({ project_id: projectId, heartbeat_interval: { nanos: 500_000_000 } });
      const shortEnd = await short.ended();
      if (shortEnd === "end") throw new Error("a 0.5 s heartbeat_interval was accepted");
      expect(shortEnd.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(shortEnd.details).toContain("heartbeat_interval");

      const garbage = watch({ project_id: projectId, since_cursor: "not-a-cursor" });
      const garbageEnd = await garbage.ended();
      if (garbageEnd === "end") throw new Error("a made-up since_cursor was accepted");
      expect(garbageEnd.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(garbageEnd.details).toContain("since_cursor");
    });
  });
});
