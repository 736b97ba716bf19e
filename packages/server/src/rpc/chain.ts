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
import type { Caller } from "../domain/context.ts";
import { toConnectError } from "./errors.ts";
import { peerKey } from "./transports/peer.ts";

const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller" });

/** The caller of the current call, as the chain established it. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new Error("handler called outside the call chain");
  return caller;
}

/** gRPC's canonical name of a code, e.g. INVALID_ARGUMENT (connect's enum says InvalidArgument). */
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Called once per finished call, for metrics (a later concern) and tests. */
export type CallObserver = (call: {
  method: string;
  protocol: string;
  code: Code | 0;
  durationMs: number;
}) => void;

/**
 * Wraps every method of a service implementation in the one call chain that
 * all transports share: it establishes the caller (request id, peer), maps
 * every error through `toConnectError`, and logs one JSON line per call with
 * method, protocol, code, duration, request id and peer, never a request or
 * response body.
 */
export function withCallChain<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  logger: Logger,
  observe: CallObserver = () => {},
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName] as (
      req: unknown,
      ctx: HandlerContext,
    ) => unknown;
    const name = `${service.typeName}/${method.name}`;
    const begin = (ctx: HandlerContext) => {
      const asked = ctx.requestHeader.get("x-request-id");
      const requestId = asked !== null && REQUEST_ID.test(asked) ? asked : randomUUID();
      const peer = ctx.values.get(peerKey);
      ctx.values.set(callerKey, { requestId, ...(peer !== undefined && { peer }) });
      ctx.responseHeader.set("x-request-id", requestId);
      return { requestId, peer, start: performance.now() };
    };
    const finish = (
      ctx: HandlerContext,
      call: ReturnType<typeof begin>,
      err: ConnectError | undefined,
    ) => {
      const durationMs = Math.round((performance.now() - call.start) * 1000) / 1000;
      const code = err?.code ?? 0;
      observe({ method: name, protocol: ctx.protocolName, code, durationMs });
      const line = {
        method: name,
        protocol: ctx.protocolName,
        code: err ? codeName(err.code) : "OK",
        duration_ms: durationMs,
        request_id: call.requestId,
        peer: call.peer,
      };
      if (err && err.code === Code.Internal) logger.error(line, "call failed");
      else logger.info(line, "call");
    };
    const fail = (call: ReturnType<typeof begin>, e: unknown) =>
      toConnectError(e, call.requestId, (cause) =>
        logger.error({ request_id: call.requestId, err: cause }, "internal error"),
      );

    if (method.methodKind === "unary") {
      wrapped[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        const call = begin(ctx);
        try {
          const res = await handler(req, ctx);
          finish(ctx, call, undefined);
          return res;
        } catch (e) {
          const err = fail(call, e);
          finish(ctx, call, err);
          throw err;
        }
      };
    } else if (method.methodKind === "server_streaming") {
      wrapped[method.localName] = async function* (req: unknown, ctx: HandlerContext) {
        const call = begin(ctx);
        try {
          yield* handler(req, ctx) as AsyncIterable<unknown>;
          finish(ctx, call, undefined);
        } catch (e) {
          const err = fail(call, e);
          finish(ctx, call, err);
          throw err;
        }
      };
    } else {
      throw new ConnectError(`${name}: streaming kind ${method.methodKind} is not supported`);
    }
  }
  return wrapped as ServiceImpl<S>;
}
