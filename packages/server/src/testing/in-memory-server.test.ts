import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { eq } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../db/schema.ts";
import { PROJECT } from "./backends.ts";
import type { Protocol } from "./clients.ts";
import { IN_MEMORY_PEER, type InMemoryServer, inMemoryBackends } from "./in-memory-server.ts";

// The in-memory tier stands in for a server on a port in the RPC tests: its
// calls must go through the same call chain, in the protocol the client
// speaks, from a peer the audit trail can name.
describe.each(inMemoryBackends)("an in-memory server on $name", (backend) => {
  let running: InMemoryServer;
  const logLines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split("\n")) if (l !== "") logLines.push(JSON.parse(l));
        done();
      },
    });
    running = await backend.start({}, pino({ level: "info" }, sink));
  });
  afterAll(() => running?.stop());

  it.each(["grpc", "connect", "grpc-web"] satisfies Protocol[])(
    "serves %s through the call chain, audited as from IN_MEMORY_PEER",
    async (protocol) => {
      const requestId = `in-memory-${protocol}-${backend.name}`;
      await running
        .client(protocol, running.adminToken)
        .listSecrets({ projectId: PROJECT }, { headers: { "x-request-id": requestId } });
      const events = await running.server.domain.regions
        .resolve("")
        .db.select()
        .from(auditEvents)
        .where(eq(auditEvents.requestId, requestId));
      expect(events.map((e) => [e.method, e.outcome, e.peer])).toEqual([
        ["coffer.secretmanager.v1.SecretService/ListSecrets", "OK", IN_MEMORY_PEER],
      ]);
      const line = logLines.find((l) => l.request_id === requestId);
      expect(line).toMatchObject({ protocol, code: "OK", peer: IN_MEMORY_PEER });
    },
  );

  it("refuses a call without a token, as over a port", async () => {
    const err = await running
      .adminClient("connect")
      .listProjects({})
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.Unauthenticated);
  });
});
