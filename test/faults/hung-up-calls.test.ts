import { randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { AccessSecretVersionRequestSchema } from "@coffer/api";
import { createCofferTransport, EphemeralAction, SecretService } from "@coffer/client";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { type FreshDatabase, freshDatabase, postgresMissing } from "./support/postgres.ts";
import { sleep, until } from "./support/wait.ts";

/**
 * README, "Decisions": a unary call, once its request is in, runs to its
 * end (its answer and its audit event) even if its client hangs up, on
 * every port. Shown on Postgres, where a call can be held where it matters:
 * another transaction locks `audit_events`, so the call's statement (the
 * access and its audit row, one statement) waits; the client then resets
 * its stream and closes its connection; the lock is released. The access
 * must still commit with its OK audit event: an access nobody received is
 * still an access, and the audit trail is what says so.
 */

const SERVICE = "coffer.secretmanager.v1.SecretService";

/** One way of calling AccessSecretVersion, by a client that can hang up at will. */
interface Port {
  name: string;
  /** Sends the call with `requestId`; the returned function hangs up. */
  send(server: ServerProcess, secretId: string, requestId: string): () => void;
}

const request = (secretId: string) =>
  toBinary(
    AccessSecretVersionRequestSchema,
    create(AccessSecretVersionRequestSchema, { secretId, revision: "1" }),
  );

/** An HTTP/2 POST of `body`; hanging up resets the stream (CANCEL) and closes the connection. */
function h2Call(url: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array): () => void {
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ...headers });
  stream.on("error", () => {});
  stream.resume();
  stream.end(body);
  return () => {
    stream.close(http2.constants.NGHTTP2_CANCEL);
    session.destroy();
  };
}

const ports: Port[] = [
  {
    name: "gRPC (grpc-js)",
    send: (server, secretId, requestId) => {
      const message = request(secretId);
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      return h2Call(
        server.grpcUrl,
        {
          ":path": `/${SERVICE}/AccessSecretVersion`,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${server.token}`,
          "x-request-id": requestId,
        },
        frame,
      );
    },
  },
  {
    name: "Connect (HTTP/2)",
    send: (server, secretId, requestId) =>
      h2Call(
        server.httpUrl,
        {
          ":path": `/${SERVICE}/AccessSecretVersion`,
          "content-type": "application/proto",
          "connect-protocol-version": "1",
          authorization: `Bearer ${server.token}`,
          "x-request-id": requestId,
        },
        request(secretId),
      ),
  },
  {
    name: "REST (HTTP/1.1)",
    send: (server, secretId, requestId) => {
      const req = http.get(
        `${server.httpUrl}/secret-manager/v1beta1/regions/local/secrets/${secretId}/versions/1/access`,
        { headers: { "x-auth-token": server.token, "x-request-id": requestId } },
      );
      req.on("error", () => {});
      return () => req.destroy();
    },
  },
];

describe("a unary call whose client hangs up", runUnless(postgresMissing), () => {
  let db: FreshDatabase | undefined;
  let dir: string | undefined;
  let server: ServerProcess | undefined;
  /** The bootstrap token's client, over gRPC; set by beforeAll. */
  let client: Client<typeof SecretService>;
  let sql: postgres.Sql | undefined;
  let projectId = "";

  beforeAll(async () => {
    dir = await makeTempDir("faults-hung-up");
    db = await freshDatabase("hungup");
    server = await startServer({
      env: { ...db.env, COFFER_BOOTSTRAP_TOKEN: newToken(), COFFER_DATA_DIR: dir },
    });
    projectId = await server.createProject();
    client = createClient(
      SecretService,
      createCofferTransport({ url: server.grpcUrl, protocol: "grpc", token: server.token }),
    );
    sql = postgres(db.env.COFFER_DATABASE_URL ?? "", { max: 4, onnotice: () => {} });
  }, 60_000);

  afterAll(async () => {
    await sql?.end();
    server?.kill();
    await server?.exited;
    await db?.drop();
    await removeTempDir(dir);
  });

  /** A secret whose revision 1 holds "payload". */
  async function newSecret(expiresOnceAccessed = false): Promise<string> {
    const { secret } = await client.createSecret({
      projectId,
      name: `hung-up-${randomUUID()}`,
      firstVersion: { data: Buffer.from("payload") },
      ...(expiresOnceAccessed && {
        ephemeralPolicy: { expiresOnceAccessed, action: EphemeralAction.DISABLE },
      }),
    });
    return secret?.id ?? "";
  }

  /**
   * Sends the call on `port` while audit_events is locked, hangs up once
   * its statement waits for the lock, releases the lock; returns the audit
   * events of the call once there is one.
   */
  async function hangUpOnHeldCall(port: Port, secretId: string) {
    const live = sql as postgres.Sql;
    const requestId = `hung-up-${randomUUID()}`;
    const holder = await live.reserve();
    try {
      await holder`begin`;
      await holder`lock table audit_events in exclusive mode`;
      const hangUp = port.send(server as ServerProcess, secretId, requestId);
      // The call is in: its statement waits for the lock.
      await until("the call's statement waits on audit_events", async () => {
        const [row] = await live<{ n: number }[]>`
          select count(*)::int as n from pg_locks
          where not granted and relation = 'audit_events'::regclass`;
        return (row?.n ?? 0) > 0;
      });
      hangUp();
      // Time for the server to see the reset and the closed connection.
      await sleep(300);
    } finally {
      await holder`commit`;
      holder.release();
    }
    const events = () => live<{ method: string; outcome: string; revision: number }[]>`
      select method, outcome, revision from audit_events where request_id = ${requestId}`;
    await until(
      `the audit event of ${requestId} is written`,
      async () => (await events()).length > 0,
    );
    return { events: await events(), logLine: await callLine(requestId) };
  }

  /** The server's log line for the call with this request id, once written. */
  async function callLine(requestId: string): Promise<Record<string, unknown>> {
    const find = () =>
      (server as ServerProcess).stdout
        .split("\n")
        .filter((text) => text.includes(`"request_id":"${requestId}"`))
        .map((text) => JSON.parse(text) as Record<string, unknown>)
        .find((line) => line.msg === "call");
    await until(`the log line of ${requestId} is written`, async () => find() !== undefined);
    return find() as Record<string, unknown>;
  }

  const accessed = { method: `${SERVICE}/AccessSecretVersion`, outcome: "OK", revision: 1 };

  for (const port of ports) {
    it(`still writes its access and audit event, and logs that its client was gone: ${port.name}`, async () => {
      const { events, logLine } = await hangUpOnHeldCall(port, await newSecret());
      expect(events).toEqual([accessed]);
      expect(logLine).toMatchObject({ code: "OK", client_gone: true });
    }, 60_000);
  }

  for (const port of ports) {
    it(`logs no client_gone for a call whose client stayed: ${port.name}`, async () => {
      const requestId = `stayed-${randomUUID()}`;
      const hangUp = port.send(server as ServerProcess, await newSecret(), requestId);
      try {
        const line = await callLine(requestId);
        expect(line).toMatchObject({ code: "OK" });
        expect(line).not.toHaveProperty("client_gone");
      } finally {
        hangUp();
      }
    }, 60_000);
  }

  it("consumes a single-access version, and its audit event says so", async () => {
    const secretId = await newSecret(true);
    expect((await hangUpOnHeldCall(ports[0] as Port, secretId)).events).toEqual([accessed]);
    const again = await client
      .accessSecretVersion({ secretId, revision: "1" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(again).toBeInstanceOf(ConnectError);
    expect((again as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((again as ConnectError).rawMessage).toContain("was already accessed");
  }, 60_000);
});
