import { randomUUID } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  type CallAudit,
  ensureFailureEvent,
  newCallAudit,
  writeAuditEvent,
} from "../domain/audit.ts";
import type { AuditEventLine, AuditLog } from "../domain/audit-log.ts";
import { type Authenticator, presentedPrefix } from "../domain/authenticate.ts";
import type { Caller, Domain } from "../domain/context.ts";
import type { DeniedCalls } from "../domain/denied-calls.ts";
import { toConnectError } from "./errors.ts";
import { type PeerLimiter, peerAddress } from "./peer-limit.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { checkRequestText } from "./request-text.ts";
import { peerKey } from "./transports/peer.ts";

const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller" });

/** The caller of the current call, as the chain established it. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new Error("handler called outside the call chain");
  return caller;
}

/** gRPC's canonical name of a code, e.g. INVALID_ARGUMENT (connect's enum says InvalidArgument). */
export function codeName(code: Code | 0): string {
  return code === 0 ? "OK" : Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Called once per finished call, for metrics (a later concern) and tests. */
export type CallObserver = (call: {
  method: string;
  protocol: string;
  code: Code | 0;
  durationMs: number;
}) => void;

export interface CallChainDeps {
  logger: Logger;
  domain: Domain;
  authenticator: Authenticator;
  /** Where audit events are copied as JSON lines, besides the database. */
  auditLog?: AuditLog;
  observe?: CallObserver;
  /** Per-token call rate (`COFFER_RATE_LIMIT_RPS`); absent: no limit. */
  rateLimiter?: RateLimiter;
  /** Per-address rate before authentication (`COFFER_PEER_RATE_LIMIT_RPS`); absent: no limit. */
  peerLimiter?: PeerLimiter;
  /**
   * Aggregates the audit events and log lines of calls refused before any
   * handler ran; absent: one event and one line per call.
   */
  deniedCalls?: DeniedCalls;
}

/** Refusals before any handler that are aggregated rather than recorded one by one. */
const AGGREGATED = new Set([Code.Unauthenticated, Code.ResourceExhausted]);

/** How often a long stream checks that its token is still valid. */
const STREAM_REAUTH_MS = 5_000;

/**
 * Wraps every method of a service implementation in the one call chain that
 * all transports share. For each call it:
 * - establishes the caller: request id (the client's `x-request-id` when
 *   sane), peer, and the principal of the bearer token (UNAUTHENTICATED
 *   without a valid one, before any handler runs), and applies the rate
 *   limits (RESOURCE_EXHAUSTED): the peer address's before the token is
 *   looked up, unless this replica verified it a moment ago, then the
 *   token's;
 * - refuses a request holding a string Postgres cannot store (NUL, lone
 *   surrogate) as INVALID_ARGUMENT naming the field (checkRequestText);
 * - maps every error through `toConnectError`;
 * - makes sure the call has exactly one audit event: domain functions write
 *   it inside their transaction when they change or reveal something; for
 *   every other call, allowed or denied, it is written here, and an allowed
 *   call whose event cannot be written fails (UNAVAILABLE) rather than answer
 *   unaudited; calls refused before any handler (UNAUTHENTICATED, rate
 *   limits) are counted in aggregated events instead (deniedCalls), so that
 *   a flood of them is bounded in the audit table and the logs;
 * - logs one JSON line with method, protocol, code, duration, request id and
 *   peer, never a request or response body.
 */
export function withCallChain<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  deps: CallChainDeps,
): ServiceImpl<S> {
  const { logger, domain, authenticator } = deps;
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName] as (
      req: unknown,
      ctx: HandlerContext,
    ) => unknown;
    const name = `${service.typeName}/${method.name}`;

    const begin = async (ctx: HandlerContext) => {
      const asked = ctx.requestHeader.get("x-request-id");
      const requestId = asked !== null && REQUEST_ID.test(asked) ? asked : randomUUID();
      const peer = ctx.values.get(peerKey);
      ctx.responseHeader.set("x-request-id", requestId);
      const audit = newCallAudit(name, requestId, peer);
      const call = { requestId, peer, audit, start: performance.now() };
      const header = ctx.requestHeader.get("authorization");
      let principal = authenticator.cached(header);
      if (principal === undefined) {
        // Before the lookup, so that a peer without a valid token cannot
        // make the database work for it at will; a valid token gives it
        // back, and one verified here before is not charged at all.
        const charged = deps.peerLimiter !== undefined && !authenticator.known(header);
        if (charged) deps.peerLimiter?.admit(peer);
        principal = await authenticator.authenticate(header);
        if (charged) deps.peerLimiter?.refund(peer);
      }
      audit.tokenId = principal.tokenId;
      ctx.values.set(callerKey, {
        requestId,
        ...(peer !== undefined && { peer }),
        principal,
        audit,
      });
      deps.rateLimiter?.admit(principal.tokenId);
      return call;
    };

    const finish = async (ctx: HandlerContext, call: Call, err: ConnectError | undefined) => {
      const code = err?.code ?? 0;
      let failure = err;
      if (!call.audit.written || err !== undefined) {
        try {
          if (err === undefined) await writeAuditEvent(domain, call.audit, "OK");
          else await ensureFailureEvent(domain, call.audit, codeName(code));
        } catch (e) {
          logger.error(
            { request_id: call.requestId, err: e, method: name },
            "audit event could not be written",
          );
          // An allowed call must not answer without its event.
          failure ??= new ConnectError(
            "the audit trail is unavailable, so the call was refused; retry with backoff",
            Code.Unavailable,
          );
        }
      }
      if (call.audit.written) deps.auditLog?.write(auditLine(call.audit, codeName(code)));
      const durationMs = Math.round((performance.now() - call.start) * 1000) / 1000;
      deps.observe?.({ method: name, protocol: ctx.protocolName, code, durationMs });
      const line = {
        method: name,
        protocol: ctx.protocolName,
        code: codeName(failure?.code ?? 0),
        duration_ms: durationMs,
        request_id: call.requestId,
        peer: call.peer,
        token_id: call.audit.tokenId,
      };
      if (failure?.code === Code.Internal) logger.error(line, "call failed");
      else logger.info(line, "call");
      if (failure !== undefined && failure !== err) throw failure;
    };

    const fail = (requestId: string, e: unknown) =>
      toConnectError(e, requestId, (cause) =>
        logger.error({ request_id: requestId, err: cause }, "internal error"),
      );

    // Authentication failures have no call yet: audit and log them alike.
    const refuse = async (ctx: HandlerContext, e: unknown): Promise<never> => {
      const requestId = ctx.responseHeader.get("x-request-id") ?? randomUUID();
      const err = fail(requestId, e);
      if (deps.deniedCalls !== undefined && AGGREGATED.has(err.code)) {
        await refuseAggregated(ctx, deps.deniedCalls, requestId, err);
        throw err;
      }
      // A call refused after authentication (rate limit) keeps its audit record, with its token.
      const audit =
        ctx.values.get(callerKey)?.audit ?? newCallAudit(name, requestId, ctx.values.get(peerKey));
      await finish(ctx, { requestId, peer: audit.peer, audit, start: performance.now() }, err);
      throw err;
    };

    /** A refusal counted in its minute's aggregated event; only a window's first is logged. */
    const refuseAggregated = async (
      ctx: HandlerContext,
      denied: DeniedCalls,
      requestId: string,
      err: ConnectError,
    ) => {
      const start = performance.now();
      const peer = ctx.values.get(peerKey);
      const tokenId = ctx.values.get(callerKey)?.audit?.tokenId;
      const tokenPrefix =
        tokenId === undefined ? presentedPrefix(ctx.requestHeader.get("authorization")) : undefined;
      const code = codeName(err.code);
      let first = true;
      try {
        first = await denied.record({
          method: name,
          outcome: code,
          requestId,
          address: peerAddress(peer),
          ...(tokenId !== undefined && { tokenId }),
          ...(tokenPrefix !== undefined && { tokenPrefix }),
        });
      } catch (e) {
        logger.error(
          { request_id: requestId, err: e, method: name },
          "audit event could not be written",
        );
      }
      const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
      deps.observe?.({ method: name, protocol: ctx.protocolName, code: err.code, durationMs });
      if (!first) return;
      logger.info(
        {
          method: name,
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
    };

    if (method.methodKind === "unary") {
      wrapped[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        const call = await begin(ctx).catch((e) => refuse(ctx, e));
        let res: unknown;
        try {
          checkRequestText(method.input, req);
          res = await handler(req, ctx);
        } catch (e) {
          const err = fail(call.requestId, e);
          await finish(ctx, call, err);
          throw err;
        }
        await finish(ctx, call, undefined);
        return res;
      };
    } else if (method.methodKind === "server_streaming") {
      const steps: StreamSteps = {
        begin,
        refuse,
        finish,
        fail,
        open: (req, ctx) => {
          checkRequestText(method.input, req);
          return (handler(req, ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
        },
        reauthenticate: (ctx) => authenticator.authenticate(ctx.requestHeader.get("authorization")),
      };
      wrapped[method.localName] = (req: unknown, ctx: HandlerContext) =>
        new ChainedStream(steps, req, ctx);
    } else {
      throw new ConnectError(`${name}: streaming kind ${method.methodKind} is not supported`);
    }
  }
  return wrapped as ServiceImpl<S>;
}

type Call = { requestId: string; peer?: string; audit: CallAudit; start: number };

/** The parts of the chain a server stream uses, built once per method. */
interface StreamSteps {
  begin(ctx: HandlerContext): Promise<Call>;
  refuse(ctx: HandlerContext, e: unknown): Promise<never>;
  finish(ctx: HandlerContext, call: Call, err: ConnectError | undefined): Promise<void>;
  fail(requestId: string, e: unknown): ConnectError;
  open(req: unknown, ctx: HandlerContext): AsyncIterator<unknown>;
  reauthenticate(ctx: HandlerContext): Promise<unknown>;
}

/**
 * A server stream through the chain. It is audited and logged once it is
 * established (its first message is ready), not when it ends: a watch may
 * last for days, and a client that hangs up would otherwise leave no event.
 * An error after that is mapped and ends the stream, without a second event.
 *
 * A plain iterator object rather than an async generator, and once
 * established it keeps only its request id of the call: thousands of idle
 * streams are the normal case.
 */
class ChainedStream implements AsyncIterableIterator<unknown> {
  private messages: AsyncIterator<unknown> | undefined;
  private requestId = "";
  private checked = 0;

  constructor(
    private readonly steps: StreamSteps,
    private req: unknown,
    private readonly ctx: HandlerContext,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    const { messages } = this;
    if (messages === undefined) return this.establish();
    // Not an async function: an idle stream waits here with a promise
    // reaction, not a suspended frame.
    return messages.next().then(
      (next) => this.checkToken(next),
      (e: unknown) => this.failed(e),
    );
  }

  /**
   * A stream outlives its token's revocation or expiry only briefly: the
   * token is checked again (through the cache) before a message goes out,
   * every STREAM_REAUTH_MS at most.
   */
  private async checkToken(next: IteratorResult<unknown>): Promise<IteratorResult<unknown>> {
    if (next.done || performance.now() - this.checked <= STREAM_REAUTH_MS) return next;
    try {
      await this.steps.reauthenticate(this.ctx);
    } catch (e) {
      return this.failed(e);
    }
    this.checked = performance.now();
    return next;
  }

  private async failed(e: unknown): Promise<never> {
    await this.messages?.return?.();
    throw this.steps.fail(this.requestId, e);
  }

  async return(): Promise<IteratorResult<unknown>> {
    await this.messages?.return?.();
    return { done: true, value: undefined };
  }

  private async establish(): Promise<IteratorResult<unknown>> {
    const { steps, ctx } = this;
    const call = await steps.begin(ctx).catch((e) => steps.refuse(ctx, e));
    let first: IteratorResult<unknown>;
    try {
      // The handler may refuse at once (validation) or on its first message.
      this.messages = steps.open(this.req, ctx);
      first = await this.messages.next();
    } catch (e) {
      const err = steps.fail(call.requestId, e);
      await steps.finish(ctx, call, err);
      throw err;
    }
    await steps.finish(ctx, call, undefined);
    // Established and audited: the stream keeps only the call's request id.
    this.requestId = call.requestId;
    this.req = undefined;
    ctx.values.delete(callerKey);
    this.checked = performance.now();
    return first;
  }
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
  };
}
