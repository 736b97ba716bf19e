import { SecretService } from "@coffer/api";
import { Code, ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { generateToken } from "../crypto/tokens.ts";
import type { AuditEventLine } from "../domain/audit-log.ts";
import type { Principal } from "../domain/caller.ts";
import type { DomainDeps } from "../domain/context.ts";
import type { DeniedCall } from "../domain/denied-calls.ts";
import { createLogger } from "../logger.ts";
import {
  aggregateRefusal,
  assignRequestId,
  authenticate,
  type ChainCall,
  callerKey,
  chargePeer,
  codeName,
  copyToAuditLog,
  logCall,
  mapError,
  newChainCall,
  notePeer,
  observeCall,
  rateLimit,
  saneRequestId,
  stopClock,
  writeAudit,
} from "./chain-steps.ts";
import { PeerLimiter } from "./peer-limit.ts";
import { RateLimiter } from "./rate-limit.ts";
import { clientGoneKey, peerKey } from "./transports/peer.ts";

const METHOD = "coffer.secretmanager.v1.SecretService/GetSecret";
const PRINCIPAL: Principal = { tokenId: "tok-1", grants: [] };

function callWith(headers: Record<string, string> = {}, peer?: string): ChainCall {
  const ctx = createHandlerContext({
    service: SecretService,
    method: SecretService.method.getSecret,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "http://localhost/",
    requestHeader: headers,
    contextValues: createContextValues().set(peerKey, peer),
  });
  const call = newChainCall(METHOD, ctx);
  assignRequestId(call);
  notePeer(call);
  return call;
}

/** The server's logger (its redaction included), writing to `lines`. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** An authenticator that knows one token and counts its lookups. */
function authenticatorOf(valid: string) {
  const state = { lookups: 0, cachedHit: false, knownHit: false };
  return {
    state,
    cached: () => (state.cachedHit ? PRINCIPAL : undefined),
    known: () => state.knownHit,
    authenticate: async (header: string | null) => {
      state.lookups++;
      if (header !== `Bearer ${valid}`) throw new ConnectError("no", Code.Unauthenticated);
      return PRINCIPAL;
    },
  };
}

/** A domain whose audit table cannot be reached. */
const unreachable = {
  regions: {
    resolve: () => {
      throw new Error("database down");
    },
  },
} as unknown as DomainDeps;

describe("assignRequestId", () => {
  it("echoes a sane x-request-id and replaces an insane one", () => {
    expect(callWith({ "x-request-id": "abc-1.2_3" }).requestId).toBe("abc-1.2_3");
    const call = callWith({ "x-request-id": "bad id\n" });
    expect(call.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(call.ctx.responseHeader.get("x-request-id")).toBe(call.requestId);
  });

  it("replaces a Coffer token sent as the request id, so it is not echoed, logged or audited", () => {
    const token = generateToken().value;
    const call = callWith({ "x-request-id": token });
    expect(call.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(call.ctx.responseHeader.get("x-request-id")).toBe(call.requestId);
    expect(saneRequestId(token)).toBeUndefined();
    // Only a real token is refused: one character off breaks its checksum.
    const last = token.at(-1) === "a" ? "b" : "a";
    expect(saneRequestId(token.slice(0, -1) + last)).toBe(token.slice(0, -1) + last);
    expect(saneRequestId("coffer_job_42")).toBe("coffer_job_42");
  });

  it("replaces a request id that is the call's own credential, whatever its form or case", () => {
    const key = "0b4f5e7a-8c1d-4e2f-9a3b-5c6d7e8f9a0b";
    const call = callWith({ "x-request-id": key.toUpperCase(), authorization: `Bearer ${key}` });
    expect(call.requestId).not.toBe(key.toUpperCase());
    expect(call.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(saneRequestId(key, key)).toBeUndefined();
    // Another UUID is a request id like any other.
    expect(callWith({ "x-request-id": "r-7", authorization: `Bearer ${key}` }).requestId).toBe(
      "r-7",
    );
    expect(saneRequestId(key, "1b4f5e7a-8c1d-4e2f-9a3b-5c6d7e8f9a0b")).toBe(key);
  });
});

describe("notePeer", () => {
  it("keeps the transport's peer and opens the audit record naming it", () => {
    const call = callWith({ "x-request-id": "r1" }, "10.0.0.1:5000");
    expect(call.peer).toBe("10.0.0.1:5000");
    expect(call.audit).toMatchObject({ method: METHOD, requestId: "r1", peer: "10.0.0.1:5000" });
  });
});

describe("chargePeer", () => {
  it("charges a peer for an unknown token, and not for a token verified here before", () => {
    const peerLimiter = new PeerLimiter({ ratePerSecond: 1, now: () => 0 });
    const auth = authenticatorOf("t");
    const deps = { peerLimiter, authenticator: auth };
    expect(chargePeer(deps, "Bearer x", "1.2.3.4:1")).toBeTypeOf("function");
    chargePeer(deps, "Bearer x", "1.2.3.4:1");
    expect(() => chargePeer(deps, "Bearer x", "1.2.3.4:2")).toThrow(
      expect.objectContaining({ code: Code.ResourceExhausted }),
    );
    auth.state.knownHit = true;
    expect(chargePeer(deps, "Bearer x", "1.2.3.4:3")).toBeUndefined();
  });
});

describe("authenticate", () => {
  it("sets the caller and the audit's token, refunding the peer's charge", async () => {
    const peerLimiter = new PeerLimiter({ ratePerSecond: 1, now: () => 0 });
    const auth = authenticatorOf("good");
    const step = authenticate({ peerLimiter, authenticator: auth });
    // The burst is 2: refunded lookups never use it up.
    for (let i = 0; i < 5; i++) {
      const call = callWith({ authorization: "Bearer good" }, "9.9.9.9:1");
      await step(call);
      expect(call.audit.tokenId).toBe("tok-1");
      expect(call.ctx.values.get(callerKey)?.principal).toBe(PRINCIPAL);
    }
    expect(auth.state.lookups).toBe(5);
  });

  it("refuses a bad token (UNAUTHENTICATED) and skips the lookup for a cached one", async () => {
    const auth = authenticatorOf("good");
    const step = authenticate({ authenticator: auth });
    const bad = callWith({ authorization: "Bearer bad" });
    await expect(step(bad)).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(bad.ctx.values.get(callerKey)).toBeUndefined();
    auth.state.cachedHit = true;
    await step(callWith({ authorization: "Bearer anything" }));
    expect(auth.state.lookups).toBe(1);
  });
});

describe("rateLimit", () => {
  it("admits a token up to its burst, then RESOURCE_EXHAUSTED", () => {
    const step = rateLimit({ rateLimiter: new RateLimiter({ ratePerSecond: 1, now: () => 0 }) });
    const call = callWith();
    call.principal = PRINCIPAL;
    step(call);
    step(call);
    expect(() => step(call)).toThrow(expect.objectContaining({ code: Code.ResourceExhausted }));
  });
});

describe("mapError", () => {
  it("hides an unexpected error as INTERNAL and logs it with the request id", () => {
    const { logger, lines } = capture();
    const err = mapError({ logger }, "r9", new Error("secret internals"));
    expect(err.code).toBe(Code.Internal);
    expect(err.message).not.toContain("secret internals");
    expect(lines[0]).toMatchObject({ request_id: "r9", msg: "internal error" });
  });
});

describe("writeAudit", () => {
  it("leaves an allowed call whose event the domain wrote alone", async () => {
    const call = callWith();
    call.audit.written = true;
    await writeAudit({ logger: capture().logger, domain: unreachable })(call);
    expect(call.failure).toBeUndefined();
  });

  it("fails an allowed call whose event cannot be written with UNAVAILABLE, and logs why", async () => {
    const { logger, lines } = capture();
    const call = callWith();
    await writeAudit({ logger, domain: unreachable })(call);
    expect(call.failure?.code).toBe(Code.Unavailable);
    expect(lines[0]).toMatchObject({ method: METHOD, msg: "audit event could not be written" });
  });

  it("keeps a refused call's own error when its event cannot be written", async () => {
    const call = callWith();
    call.error = call.failure = new ConnectError("no", Code.PermissionDenied);
    await writeAudit({ logger: capture().logger, domain: unreachable })(call);
    expect(call.failure.code).toBe(Code.PermissionDenied);
  });
});

describe("copyToAuditLog", () => {
  it("copies a written event with the call's outcome, and nothing else", () => {
    const written: AuditEventLine[] = [];
    const step = copyToAuditLog({ auditLog: { write: (line) => written.push(line) } });
    const call = callWith({ "x-request-id": "r2" });
    step(call);
    expect(written).toEqual([]);
    call.audit.written = true;
    call.error = new ConnectError("no", Code.NotFound);
    step(call);
    expect(written).toEqual([
      expect.objectContaining({ method: METHOD, request_id: "r2", outcome: "NOT_FOUND" }),
    ]);
  });
});

describe("stopClock and observeCall", () => {
  it("report the call's own code and its duration", () => {
    const seen: unknown[] = [];
    const call = callWith();
    call.start = performance.now() - 5;
    call.error = new ConnectError("no", Code.NotFound);
    call.failure = new ConnectError("audit down", Code.Unavailable);
    stopClock(call);
    observeCall({ observe: (c) => seen.push(c) })(call);
    expect(call.durationMs).toBeGreaterThanOrEqual(5);
    expect(seen).toEqual([
      { method: METHOD, protocol: "grpc", code: Code.NotFound, durationMs: call.durationMs },
    ]);
  });
});

describe("logCall", () => {
  it("logs what the caller got, with ids and no body; INTERNAL at error level", () => {
    const { logger, lines } = capture();
    const call = callWith({ "x-request-id": "r3" }, "1.1.1.1:1");
    call.audit.tokenId = "tok-1";
    logCall({ logger })(call);
    call.failure = new ConnectError("x", Code.Internal);
    logCall({ logger })(call);
    expect(lines).toEqual([
      {
        level: 30,
        time: expect.any(String),
        service: "coffer-server",
        msg: "call",
        method: METHOD,
        protocol: "grpc",
        code: "OK",
        duration_ms: expect.any(Number),
        request_id: "r3",
        peer: "1.1.1.1:1",
        token_id: "tok-1",
      },
      expect.objectContaining({ level: 50, msg: "call failed", code: "INTERNAL" }),
    ]);
  });

  it("says client_gone when the transport says the client left before the answer", () => {
    const { logger, lines } = capture();
    const call = callWith({ "x-request-id": "r4" }, "1.1.1.1:1");
    let gone = false;
    call.ctx.values.set(clientGoneKey, () => gone);
    logCall({ logger })(call);
    gone = true;
    logCall({ logger })(call);
    expect(lines.map((l) => l.client_gone)).toEqual([undefined, true]);
    expect(lines[1]).toMatchObject({ msg: "call", code: "OK", request_id: "r4" });
  });
});

describe("aggregateRefusal", () => {
  it("counts UNAUTHENTICATED and RESOURCE_EXHAUSTED, logging only a window's first", async () => {
    const { logger, lines } = capture();
    const recorded: DeniedCall[] = [];
    const observed: unknown[] = [];
    const step = aggregateRefusal({
      logger,
      observe: (c) => observed.push(c.code),
      deniedCalls: { record: async (d) => recorded.push(d) === 1 },
    });
    const unauthenticated = new ConnectError("no", Code.Unauthenticated);
    const call = callWith({ authorization: "Bearer coffer_abcdefgh_rest" }, "5.5.5.5:1");
    expect(await step(call, unauthenticated)).toBe(true);
    expect(await step(call, unauthenticated)).toBe(true);
    expect(await step(call, new ConnectError("no", Code.PermissionDenied))).toBe(false);
    expect(recorded).toHaveLength(2);
    expect(recorded[0]).toMatchObject({ method: METHOD, outcome: "UNAUTHENTICATED" });
    expect(observed).toEqual([Code.Unauthenticated, Code.Unauthenticated]);
    expect(lines).toEqual([expect.objectContaining({ aggregated: true, code: "UNAUTHENTICATED" })]);
  });

  it("leaves every refusal to the record steps without deniedCalls", async () => {
    const step = aggregateRefusal({ logger: capture().logger });
    expect(await step(callWith(), new ConnectError("no", Code.Unauthenticated))).toBe(false);
  });
});

describe("codeName", () => {
  it("names codes as gRPC does", () => {
    expect(codeName(0)).toBe("OK");
    expect(codeName(Code.InvalidArgument)).toBe("INVALID_ARGUMENT");
  });
});
