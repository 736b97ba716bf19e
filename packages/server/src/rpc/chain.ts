import { randomUUID } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { AuditLog } from "../domain/audit-log.ts";
import type { Authenticator } from "../domain/authenticate.ts";
import type { Caller } from "../domain/caller.ts";
import type { DomainDeps } from "../domain/context.ts";
import type { DeniedCalls } from "../domain/denied-calls.ts";
import {
  admitAnonymous,
  aggregateRefusal,
  assignRequestId,
  authenticate,
  type CallObserver,
  type ChainCall,
  callerKey,
  copyToAuditLog,
  logCall,
  mapError,
  newChainCall,
  notePeer,
  observeCall,
  rateLimit,
  refundOnSuccess,
  type Step,
  stopClock,
  writeAudit,
} from "./chain-steps.ts";
import type { PeerLimiter } from "./peer-limit.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { checkRequestText } from "./request-text.ts";

export { type CallObserver, codeName } from "./chain-steps.ts";

/** The caller of the current call, as the chain established it. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new Error("handler called outside the call chain");
  return caller;
}

/**
 * Handlers that give the request, as it is, to one domain function and
 * encode its answer: most of a service's handlers.
 */
export function passingTo(domain: DomainDeps) {
  return <I, O, R>(
    fn: (domain: DomainDeps, caller: Caller, input: I) => Promise<O>,
    encode: (answer: O) => R,
  ) =>
    async (req: I, ctx: HandlerContext): Promise<R> =>
      encode(await fn(domain, callerOf(ctx), req));
}

export interface CallChainDeps {
  logger: Logger;
  domain: DomainDeps;
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

/** How often a long stream checks that its token is still valid. */
const STREAM_REAUTH_MS = 5_000;

/**
 * The call chain's steps, in order (each in chain-steps.ts, tested alone):
 * - admission, before the handler; a throw refuses the call: the request id
 *   (the client's `x-request-id` when sane), the peer, the principal of the
 *   bearer token (UNAUTHENTICATED without a valid one; the peer address's
 *   rate limit charged before a lookup, unless this replica verified the
 *   token a moment ago), the token's rate limit (RESOURCE_EXHAUSTED);
 * - then, with the handler's errors: the request's text check (a string
 *   Postgres cannot store is INVALID_ARGUMENT naming the field);
 * - record, once the outcome is known and mapped (mapError): the audit event
 *   (exactly one per call), its copy to the audit log, the duration, the
 *   metrics observer, the log line (never a request or response body).
 * Calls refused at admission with UNAUTHENTICATED or RESOURCE_EXHAUSTED are
 * counted in aggregated events instead (aggregateRefusal), so that a flood of
 * them is bounded in the audit table and the logs.
 */
export function chainSteps(
  deps: CallChainDeps,
  options: ChainOptions = {},
): { admission: Step[]; record: Step[] } {
  const record = [
    writeAudit(deps),
    copyToAuditLog(deps),
    stopClock,
    observeCall(deps),
    logCall(deps),
  ];
  if (options.anonymous) {
    return {
      admission: [assignRequestId, notePeer, admitAnonymous(deps)],
      record: [...record, refundOnSuccess],
    };
  }
  return { admission: [assignRequestId, notePeer, authenticate(deps), rateLimit(deps)], record };
}

export interface ChainOptions {
  /**
   * The service's calls need no bearer token (AuthService): instead of
   * authenticate and the token's rate limit, admitAnonymous charges the
   * peer address (given back on success); everything else is the same.
   */
  anonymous?: boolean;
}

/**
 * Wraps every method of a service implementation in the one call chain that
 * all transports share (see {@link chainSteps}). Server streams are audited
 * once established (see ChainedStream) and re-check their token as they go.
 */
export function withCallChain<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  deps: CallChainDeps,
  options: ChainOptions = {},
): ServiceImpl<S> {
  const { authenticator } = deps;
  const steps = chainSteps(deps, options);
  const aggregated = aggregateRefusal(deps);
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName] as (
      req: unknown,
      ctx: HandlerContext,
    ) => unknown;
    const name = `${service.typeName}/${method.name}`;

    const finish = async (call: ChainCall, err: ConnectError | undefined) => {
      call.error = err;
      call.failure = err;
      for (const step of steps.record) {
        const pending = step(call);
        // Only an async step is awaited: every await is a turn of the event loop's queue.
        if (pending !== undefined) await pending;
      }
      if (call.failure !== undefined && call.failure !== err) throw call.failure;
    };

    const begin = async (ctx: HandlerContext) => {
      const call = newChainCall(name, ctx);
      try {
        for (const step of steps.admission) {
          const pending = step(call);
          if (pending !== undefined) await pending;
        }
      } catch (e) {
        await refuse(call, e);
      }
      return call;
    };

    const fail = (requestId: string, e: unknown) => mapError(deps, requestId, e);

    // Refusals at admission have no handler outcome: audit and log them alike.
    const refuse = async (call: ChainCall, e: unknown): Promise<never> => {
      call.requestId ||= randomUUID();
      const err = fail(call.requestId, e);
      if (await aggregated(call, err)) throw err;
      // Timed from the refusal; a call refused after authentication (rate
      // limit) keeps its audit record, with its token.
      call.start = performance.now();
      await finish(call, err);
      throw err;
    };

    if (method.methodKind === "unary") {
      wrapped[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        const call = await begin(ctx);
        let res: unknown;
        try {
          checkRequestText(method.input, req);
          res = await handler(req, ctx);
        } catch (e) {
          const err = fail(call.requestId, e);
          await finish(call, err);
          throw err;
        }
        await finish(call, undefined);
        return res;
      };
    } else if (method.methodKind === "server_streaming") {
      const streamSteps: StreamSteps = {
        begin,
        finish,
        fail,
        open: (req, ctx) => {
          checkRequestText(method.input, req);
          return (handler(req, ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
        },
        reauthenticate: (ctx) => authenticator.authenticate(ctx.requestHeader.get("authorization")),
      };
      wrapped[method.localName] = (req: unknown, ctx: HandlerContext) =>
        new ChainedStream(streamSteps, req, ctx);
    } else {
      throw new ConnectError(`${name}: streaming kind ${method.methodKind} is not supported`);
    }
  }
  return wrapped as ServiceImpl<S>;
}

/** The parts of the chain a server stream uses, built once per method. */
interface StreamSteps {
  /** Admission; a refusal is recorded and thrown. */
  begin(ctx: HandlerContext): Promise<ChainCall>;
  finish(call: ChainCall, err: ConnectError | undefined): Promise<void>;
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
    const call = await steps.begin(ctx);
    let first: IteratorResult<unknown>;
    try {
      // The handler may refuse at once (validation) or on its first message.
      this.messages = steps.open(this.req, ctx);
      first = await this.messages.next();
    } catch (e) {
      const err = steps.fail(call.requestId, e);
      await steps.finish(call, err);
      throw err;
    }
    await steps.finish(call, undefined);
    // Established and audited: the stream keeps only the call's request id.
    this.requestId = call.requestId;
    this.req = undefined;
    ctx.values.delete(callerKey);
    this.checked = performance.now();
    return first;
  }
}
