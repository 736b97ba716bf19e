import { randomUUID } from "node:crypto";
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import { isWellFormedToken } from "../crypto/tokens.ts";
import {
  type CallAudit,
  ensureFailureEvent,
  newCallAudit,
  writeAuditEvent,
} from "../domain/audit.ts";
import type { AuditEventLine, AuditLog } from "../domain/audit-log.ts";
import { type Authenticator, bearer, presentedPrefix } from "../domain/authenticate.ts";
import type { Caller, Principal } from "../domain/caller.ts";
import type { DomainDeps } from "../domain/context.ts";
import type { DeniedCalls } from "../domain/denied-calls.ts";
import { unredacted } from "../logger.ts";
import { toConnectError } from "./errors.ts";
import { type PeerLimiter, peerAddress } from "./peer-limit.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { clientGoneKey, peerKey } from "./transports/peer.ts";

/**
 * The steps of the call chain (see withCallChain in chain.ts), each one job,
 * run in the order of the lists there: the admission steps before the
 * handler (a throw refuses the call), the record steps once its outcome is
 * known, and the refusal step for calls refused before any handler.
 */

export const callerKey = createContextKey<Caller | undefined>(undefined, {
  description: "caller",
});

/** gRPC's canonical name of a code, e.g. INVALID_ARGUMENT (connect's enum says InvalidArgument). */
export function codeName(code: Code | 0): string {
  return code === 0 ? "OK" : Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Called once per finished call, for metrics and tests. */
export type CallObserver = (call: {
  method: string;
  protocol: string;
  code: Code | 0;
  durationMs: number;
}) => void;

/** What the steps use; each step reads only its part. */
export interface StepDeps {
  logger: Logger;
  domain: DomainDeps;
  authenticator: Pick<Authenticator, "cached" | "known" | "authenticate">;
  /** Where audit events are copied as JSON lines, besides the database. */
  auditLog?: Pick<AuditLog, "write">;
  observe?: CallObserver;
  /** Per-token call rate (`COFFER_RATE_LIMIT_RPS`); absent: no limit. */
  rateLimiter?: Pick<RateLimiter, "admit">;
  /** Per-address rate before authentication (`COFFER_PEER_RATE_LIMIT_RPS`); absent: no limit. */
  peerLimiter?: Pick<PeerLimiter, "admit" | "refund">;
  /**
   * Aggregates the audit events and log lines of calls refused before any
   * handler ran; absent: one event and one line per call.
   */
  deniedCalls?: Pick<DeniedCalls, "record">;
}

/** One call as the steps see it and fill it in. */
export interface ChainCall {
  /** `package.Service/Method`. */
  readonly method: string;
  readonly ctx: HandlerContext;
  requestId: string;
  peer: string | undefined;
  audit: CallAudit;
  principal: Principal | undefined;
  start: number;
  /** The call's own outcome: the handler's (or a refusal's) error, mapped. */
  error: ConnectError | undefined;
  /** What the caller gets: `error`, or the failure a record step added (an unwritable audit event). */
  failure: ConnectError | undefined;
  durationMs: number;
  /** For a call without a token: gives back the peer's charge when the call succeeds. */
  refund?: () => void;
}

/** A call before any step ran. */
export function newChainCall(method: string, ctx: HandlerContext): ChainCall {
  return {
    method,
    ctx,
    requestId: "",
    peer: undefined,
    // Opened by notePeer, once the request id and the peer are known.
    audit: { id: "", method, requestId: "", region: "", facts: {}, written: false },
    principal: undefined,
    start: performance.now(),
    error: undefined,
    failure: undefined,
    durationMs: 0,
  };
}

/** A step of the chain; it may throw (admission) or set `failure` (record). */
export type Step = (call: ChainCall) => void | Promise<void>;

// ---- admission: before the handler; a throw refuses the call ----

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A client's request id when it is sane (1–64 of A-Z a-z 0-9 . _ -) and not
 * a credential; undefined otherwise. A request id is logged, echoed and kept
 * in the audit table, and a token fits the pattern: a client that put its
 * token there by mistake (a header swapped in a config) would see it written
 * where every admin can read it. Refused: any Coffer token (checksum valid;
 * `coffer_job_42` is kept), and the credential the call itself presents
 * (`presented`, compared without case), which covers Scaleway-style secret
 * keys, UUIDs like many request ids.
 */
export function saneRequestId(
  asked: string | null | undefined,
  presented?: string,
): string | undefined {
  if (asked == null || !REQUEST_ID.test(asked) || isWellFormedToken(asked)) return undefined;
  if (presented !== undefined && asked.toLowerCase() === presented.toLowerCase()) return undefined;
  return asked;
}

/** The client's `x-request-id` when sane, else a new one; echoed in the response headers. */
export const assignRequestId: Step = (call) => {
  const headers = call.ctx.requestHeader;
  const asked = headers.get("x-request-id");
  call.requestId =
    (asked === null ? undefined : saneRequestId(asked, bearer(headers.get("authorization")))) ??
    randomUUID();
  call.ctx.responseHeader.set("x-request-id", call.requestId);
};

/** The peer the transport saw, and the call's audit record, which names both. */
export const notePeer: Step = (call) => {
  call.peer = call.ctx.values.get(peerKey);
  call.audit = newCallAudit(call.method, call.requestId, call.peer);
  call.start = performance.now();
};

/**
 * Charges the peer address for a token lookup, unless the token is cached or
 * was verified here before; returns the refund for a lookup that succeeds.
 * Before the lookup, so that a peer without a valid token cannot make the
 * database work for it at will; a valid token gives it back.
 */
export function chargePeer(
  deps: Pick<StepDeps, "peerLimiter" | "authenticator">,
  header: string | null,
  peer: string | undefined,
): (() => void) | undefined {
  const limiter = deps.peerLimiter;
  if (limiter === undefined || deps.authenticator.known(header)) return undefined;
  limiter.admit(peer);
  return () => limiter.refund(peer);
}

/**
 * The principal of the bearer token (UNAUTHENTICATED without a valid one),
 * through the cache, the peer charged for a lookup (chargePeer); it becomes
 * the call's caller, which handlers read with callerOf.
 */
export function authenticate(deps: Pick<StepDeps, "peerLimiter" | "authenticator">): Step {
  return async (call) => {
    const header = call.ctx.requestHeader.get("authorization");
    let principal = deps.authenticator.cached(header);
    if (principal === undefined) {
      const refund = chargePeer(deps, header, call.peer);
      principal = await deps.authenticator.authenticate(header);
      refund?.();
    }
    call.principal = principal;
    call.audit.tokenId = principal.tokenId;
    call.ctx.values.set(callerKey, {
      requestId: call.requestId,
      ...(call.peer !== undefined && { peer: call.peer }),
      principal,
      audit: call.audit,
    });
  };
}

/**
 * For the calls that need no token (AuthService.ExchangeToken): the caller
 * has no principal, and the peer address is charged before the handler as
 * a call with an unknown token is (chargePeer), given back when the call
 * succeeds (refundOnSuccess): a flood of made-up JWTs, each an audit event
 * and perhaps a key fetch, is bounded per address.
 */
export function admitAnonymous(deps: Pick<StepDeps, "peerLimiter">): Step {
  return (call) => {
    const limiter = deps.peerLimiter;
    if (limiter !== undefined) {
      limiter.admit(call.peer);
      call.refund = () => limiter.refund(call.peer);
    }
    call.ctx.values.set(callerKey, {
      requestId: call.requestId,
      ...(call.peer !== undefined && { peer: call.peer }),
      audit: call.audit,
    });
  };
}

/** Gives back a call's pre-authentication charge (admitAnonymous) when it succeeded. */
export const refundOnSuccess: Step = (call) => {
  if (call.failure === undefined) call.refund?.();
};

/** The token's call rate (RESOURCE_EXHAUSTED past it). */
export function rateLimit(deps: Pick<StepDeps, "rateLimiter">): Step {
  return (call) => {
    if (call.principal !== undefined) deps.rateLimiter?.admit(call.principal.tokenId);
  };
}

// ---- error mapping ----

/** Any error as the ConnectError the caller gets; an unexpected one is logged and hidden. */
export function mapError(deps: Pick<StepDeps, "logger">, requestId: string, e: unknown) {
  return toConnectError(e, requestId, (cause) =>
    deps.logger.error({ request_id: requestId, err: cause }, "internal error"),
  );
}

// ---- record: once the outcome is known ----

/**
 * Makes sure the call has exactly one audit event: domain functions write it
 * inside their transaction when they change or reveal something; for every
 * other call, allowed or denied, it is written here. An allowed call whose
 * event cannot be written fails (UNAVAILABLE) rather than answer unaudited.
 */
export function writeAudit(deps: Pick<StepDeps, "logger" | "domain">): Step {
  return async (call) => {
    const { audit, error } = call;
    if (audit.written && error === undefined) return;
    try {
      if (error === undefined) await writeAuditEvent(deps.domain, audit, "OK");
      else await ensureFailureEvent(deps.domain, audit, codeName(error.code));
    } catch (e) {
      deps.logger.error(
        { request_id: call.requestId, err: e, method: call.method },
        "audit event could not be written",
      );
      // An allowed call must not answer without its event.
      call.failure ??= new ConnectError(
        "the audit trail is unavailable, so the call was refused; retry with backoff",
        Code.Unavailable,
      );
    }
  };
}

/** Copies a written audit event to the JSON-lines audit log. */
export function copyToAuditLog(deps: Pick<StepDeps, "auditLog">): Step {
  return (call) => {
    if (call.audit.written) deps.auditLog?.write(auditLine(call.audit, outcomeOf(call)));
  };
}

/** The call's duration, in milliseconds with microsecond precision. */
export const stopClock: Step = (call) => {
  call.durationMs = Math.round((performance.now() - call.start) * 1000) / 1000;
};

/** Reports the call (its own outcome) to the metrics observer. */
export function observeCall(deps: Pick<StepDeps, "observe">): Step {
  return (call) => {
    deps.observe?.({
      method: call.method,
      protocol: call.ctx.protocolName,
      code: call.error?.code ?? 0,
      durationMs: call.durationMs,
    });
  };
}

/**
 * One JSON line per call: method, protocol, code (what the caller got),
 * duration, request id, peer and token id, never a request or response body;
 * and `client_gone: true` when the client left before the answer was ready
 * (the code is then what it would have got: the call ran to its end, audit
 * event included). Every field is the chain's own (the request id is a
 * client's only when it passes saneRequestId), so the line skips the
 * redaction pass (unredacted): keep it so when adding one.
 */
export function logCall(deps: Pick<StepDeps, "logger">): Step {
  const logger = unredacted(deps.logger);
  return (call) => {
    const line = {
      method: call.method,
      protocol: call.ctx.protocolName,
      code: codeName(call.failure?.code ?? 0),
      duration_ms: call.durationMs,
      request_id: call.requestId,
      peer: call.peer,
      token_id: call.audit.tokenId,
      // Left out of the JSON when undefined, so a delivered answer's line is unchanged.
      client_gone: call.ctx.values.get(clientGoneKey)() || undefined,
    };
    if (call.failure?.code === Code.Internal) logger.error(line, "call failed");
    else logger.info(line, "call");
  };
}

// ---- refusal before any handler ----

/** Refusals before any handler that are aggregated rather than recorded one by one. */
export const AGGREGATED: ReadonlySet<Code> = new Set([
  Code.Unauthenticated,
  Code.ResourceExhausted,
]);

/**
 * A refusal before any handler (UNAUTHENTICATED, rate limits) counted in its
 * minute's aggregated event (deniedCalls), so that a flood of them is bounded
 * in the audit table and the logs; only a window's first is logged. Returns
 * false when the refusal is not aggregated: the record steps handle it then.
 */
export function aggregateRefusal(deps: Pick<StepDeps, "logger" | "deniedCalls" | "observe">) {
  return async (call: ChainCall, err: ConnectError): Promise<boolean> => {
    const denied = deps.deniedCalls;
    if (denied === undefined || !AGGREGATED.has(err.code)) return false;
    const { ctx, method, requestId } = call;
    const start = performance.now();
    const peer = ctx.values.get(peerKey);
    const tokenId = ctx.values.get(callerKey)?.audit?.tokenId;
    const tokenPrefix =
      tokenId === undefined ? presentedPrefix(ctx.requestHeader.get("authorization")) : undefined;
    const code = codeName(err.code);
    let first = true;
    try {
      first = await denied.record({
        method,
        outcome: code,
        requestId,
        address: peerAddress(peer),
        ...(tokenId !== undefined && { tokenId }),
        ...(tokenPrefix !== undefined && { tokenPrefix }),
      });
    } catch (e) {
      deps.logger.error(
        { request_id: requestId, err: e, method },
        "audit event could not be written",
      );
    }
    const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
    deps.observe?.({ method, protocol: ctx.protocolName, code: err.code, durationMs });
    if (!first) return true;
    deps.logger.info(
      {
        method,
        protocol: ctx.protocolName,
        code,
        duration_ms: durationMs,
        request_id: requestId,
        peer,
        token_id: tokenId,
        token_prefix: tokenPrefix,
        // Repeats within the minute are counted, not logged: see "refused calls (aggregated)".
        aggregated: true,
      },
      "call",
    );
    return true;
  };
}

function outcomeOf(call: ChainCall): string {
  return codeName(call.error?.code ?? 0);
}

function auditLine(audit: CallAudit, outcome: string): AuditEventLine {
  const f = audit.facts;
  return {
    time: new Date().toISOString(),
    id: audit.id,
    region: audit.region,
    token_id: audit.tokenId,
    project_id: f.projectId,
    method: audit.method,
    secret_id: f.secretId,
    secret_path: f.secretPath,
    secret_name: f.secretName,
    revision: f.revision,
    outcome,
    request_id: audit.requestId,
    peer: audit.peer,
    target_token_id: f.targetTokenId,
    issuer: f.issuer,
    subject: f.subject,
    binding_id: f.bindingId,
    reason: f.reason,
  };
}
