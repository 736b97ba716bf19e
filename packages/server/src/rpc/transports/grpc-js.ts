import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type MethodImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import { addReflection } from "../reflection.ts";
import type { Services } from "../services.ts";
import { encodeByHand } from "./access-response.ts";
import { GrpcLimits } from "./grpc-limits.ts";
import type { Listening, ListenOptions } from "./limits.ts";
import { MetadataHeaders } from "./metadata-headers.ts";
import { clientGoneKey, peerKey } from "./peer.ts";
import { grpcServerCredentials } from "./tls.ts";

export interface GrpcServer extends Listening {
  /** Ends the streams that would hold a graceful close (reflection): the first step of a drain. */
  drain(): void;
}

/**
 * Serves `services` over gRPC with grpc-js on `address`, with server
 * reflection describing `services.descriptors`, under the connection limits
 * (see {@link GrpcLimits}; `budget` is shared with the other transports).
 */
export async function listenGrpc(
  services: Services,
  address: { host: string; port: number },
  options: ListenOptions,
): Promise<GrpcServer> {
  const limits = new GrpcLimits(options.limits, options.budget, options.readMaxBytes);
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.readMaxBytes,
    // Coffer serves no channelz service, so nothing reads what grpc-js would
    // track per call and per connection (closures and counters on every call).
    "grpc.enable_channelz": 0,
    ...limits.serverOptions(),
  });
  for (const { desc, impl } of services.served) {
    addService(server, desc, impl, { shutdownSignal: options.shutdownSignal });
  }
  const closeReflection = addReflection(server, services.descriptors);
  const listener = await limits.listen(server, address, grpcServerCredentials(options.tls));
  return {
    port: listener.port,
    drain: closeReflection,
    close: async () => {
      const shutdown = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await Promise.all([listener.close(), shutdown]);
    },
    destroy: () => {
      server.forceShutdown();
      listener.destroy();
    },
  };
}

/** Options of {@link addService}. */
export interface AddServiceOptions {
  /**
   * Aborted on graceful shutdown: aborts the context signal of every call in
   * flight, so that long handlers and streams wind down.
   */
  shutdownSignal?: AbortSignal;
}

/**
 * Serves a connect-es service implementation over gRPC with grpc-js, which is
 * several times faster than connect-node's gRPC. The implementation is the
 * same object given to connect-node's router: it sees a `HandlerContext` with
 * `protocolName` "grpc", the request metadata as headers (binary `-bin`
 * values base64-encoded, as on the wire), the deadline, and the peer under
 * {@link peerKey}; its response headers and trailers become gRPC metadata.
 *
 * Unary and server-streaming methods are supported; a service with a client-
 * or bidi-streaming method is refused here, at registration. Methods the
 * implementation leaves out answer UNIMPLEMENTED, as with connect-node.
 *
 * Errors: a `ConnectError` is sent with its code (connect's codes are gRPC's
 * numbers), raw message, metadata and details. Anything else becomes INTERNAL
 * "internal error": the chain above maps domain errors, and whatever reaches
 * this point unmapped may carry internals, so its message is never sent. A
 * request that does not decode is INVALID_ARGUMENT.
 *
 * Connect interceptors are not run here: cross-cutting behaviour must wrap
 * the implementation itself.
 */
export function addService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: AddServiceOptions = {},
): void {
  // The spec binds each method to `impl` and fills the missing ones with
  // connect's own UNIMPLEMENTED stub.
  const spec = createServiceImplSpec(service, impl);
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const methodSpec = spec.methods[method.localName];
    if (methodSpec === undefined) {
      throw new Error(`${service.typeName}.${method.name}: no implementation spec`);
    }
    const path = `/${service.typeName}/${method.name}`;
    // Messages cross grpc-js as raw bytes and are decoded and encoded in the
    // handlers: grpc-js answers INTERNAL when its deserializer throws (and
    // hides why), while a malformed request is the client's fault.
    const bytes = {
      path,
      originalName: method.localName,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
    const call = { service, path, shutdownSignal: options.shutdownSignal };
    switch (methodSpec.kind) {
      case "unary":
        definition[method.localName] = { ...bytes, requestStream: false, responseStream: false };
        handlers[method.localName] = serveUnary(methodSpec, call);
        break;
      case "server_streaming":
        definition[method.localName] = { ...bytes, requestStream: false, responseStream: true };
        handlers[method.localName] = serveServerStreaming(methodSpec, call);
        break;
      default:
        throw new Error(
          `${service.typeName}.${method.name} is ${method.methodKind}: the grpc-js adapter serves only unary and server-streaming methods`,
        );
    }
  }
  server.addService(definition, handlers);
}

/** How close to the deadline a cancellation counts as the deadline. */
const deadlineSlackMs = 100;

/**
 * The reason a call's signal is aborted with once the call is over. Built
 * once: aborting without a reason makes a DOMException, with its stack, on
 * every call.
 */
const CALL_OVER = new ConnectError("the call is over", Code.Canceled);

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;
type ServerStreamingSpec = Extract<MethodImplSpec, { kind: "server_streaming" }>;
/** What handlers see, and what the adapter ends once the call is over. */
type CallContext = HandlerContext & { abort(reason: unknown): void };
type Call = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>;

/** What every call of one method shares. */
interface MethodInfo {
  service: DescService;
  path: string;
  shutdownSignal: AbortSignal | undefined;
}

function serveUnary(spec: UnarySpec, info: MethodInfo): grpc.handleUnaryCall<Buffer, Buffer> {
  return (call, callback) => {
    const context = new GrpcCallContext(call, spec, info);
    void (async () => {
      try {
        const request = decode(spec.method.input, call.request);
        const response = encode(spec.method.output, await spec.impl(request, context));
        sendHeaders(call, context);
        callback(null, response, toMetadata(context.responseTrailer));
      } catch (e) {
        // After a cancel or the deadline grpc-js has already ended the call
        // and ignores this.
        sendHeaders(call, context);
        callback(errorStatus(e, context));
      } finally {
        // Connect aborts the signal when a call completes, and the context's
        // own deadline timer is cleared only here.
        context.abort(CALL_OVER);
      }
    })();
  };
}

function serveServerStreaming(
  spec: ServerStreamingSpec,
  info: MethodInfo,
): grpc.handleServerStreamingCall<Buffer, Buffer> {
  return (call) => {
    const context = new GrpcCallContext(call, spec, info);
    void (async () => {
      try {
        const request = decode(spec.method.input, call.request);
        // Leaving this loop by break or throw calls the iterator's return(),
        // which runs the generator's finally blocks.
        for await (const response of spec.impl(request, context)) {
          sendHeaders(call, context);
          if (!call.write(encode(spec.method.output, response))) {
            await drained(call, context.signal);
          }
          // After a cancel grpc-js destroys the stream and drops writes
          // without an error: stop pulling from the generator.
          context.signal.throwIfAborted();
        }
        sendHeaders(call, context);
        call.end(toMetadata(context.responseTrailer));
      } catch (e) {
        if (!call.cancelled) {
          sendHeaders(call, context);
          // grpc-js's own "error" listener turns this into the status sent
          // after the messages already written; destroy() would drop them
          // and send no status at all.
          call.emit("error", errorStatus(e, context));
        }
      } finally {
        context.abort(CALL_OVER);
      }
    })();
  };
}

/**
 * The call's HandlerContext, built directly rather than with connect's
 * createHandlerContext, which copies the request headers, links three abort
 * controllers and arms a deadline timer on every call: a seventh of the
 * server's CPU per call in profiles. grpc-js enforces the deadline itself and
 * emits "cancelled" when it passes.
 *
 * The signal is made when a handler first reads it: an AbortController, its
 * signal, a shutdown listener and the abort event at the end cost about 4 %
 * of a unary access's CPU (profile of 2026-12-05), and unary handlers never
 * read it. Whoever reads it sees what an eager one would show: aborted with
 * the reason of the first of the client's cancel, the deadline, shutdown, or
 * `abort` once the call is over, even when that came before the read.
 *
 * A class, so that the signal's getter is one function on the prototype
 * and the context keeps fast properties: an object literal with a getter
 * closing over the call is a dictionary-mode object, one per call. Served
 * through this adapter, a grpc-js echo kept promoting about 2.5 MB of every
 * scavenge's 12 in 12 runs of 12 with the literal, in 4 of 17 with the class
 * (bench/RESULTS.md, access reading of 2026-12-06, third session).
 */
class GrpcCallContext implements CallContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly service: DescService;
  readonly method: MethodImplSpec["method"];
  /**
   * grpc-js does not expose the scheme or the :path pseudo-header; the
   * method path is what a gRPC server receives as the request target.
   */
  readonly url: string;
  readonly requestHeader: Headers;
  readonly responseHeader = new Headers();
  readonly responseTrailer = new Headers();
  readonly values: ContextValues;
  readonly #call: Call;
  readonly #deadlineMs: number;
  readonly #shutdownSignal: AbortSignal | undefined;
  #controller: AbortController | undefined;
  /** Why the call ended before anyone read the signal. */
  #ended: { reason: unknown } | undefined;

  constructor(call: Call, spec: MethodImplSpec, info: MethodInfo) {
    const deadline = call.getDeadline();
    this.#call = call;
    this.#deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    this.#shutdownSignal = info.shutdownSignal;
    this.service = info.service;
    this.method = spec.method;
    this.url = info.path;
    this.requestHeader = new MetadataHeaders(call.metadata);
    this.values = createContextValues()
      .set(peerKey, peerOf(call))
      .set(clientGoneKey, () => call.cancelled);
    if (call.cancelled) this.#onCancelled();
    else call.once("cancelled", this.#onCancelled);
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#ended !== undefined) this.#controller.abort(this.#ended.reason);
      else if (this.#shutdownSignal?.aborted) this.#onShutdown();
      else this.#shutdownSignal?.addEventListener("abort", this.#onShutdown);
    }
    return this.#controller.signal;
  }

  timeoutMs(): number | undefined {
    return Number.isFinite(this.#deadlineMs) ? this.#deadlineMs - Date.now() : undefined;
  }

  abort(reason: unknown): void {
    this.#call.off("cancelled", this.#onCancelled);
    if (this.#controller !== undefined) {
      this.#shutdownSignal?.removeEventListener("abort", this.#onShutdown);
    }
    this.#end(reason);
  }

  #end(reason: unknown): void {
    if (this.#controller === undefined) this.#ended ??= { reason };
    else if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /**
   * grpc-js emits "cancelled" when the client cancels, when the deadline
   * passes (after it has sent DEADLINE_EXCEEDED itself), and also after any
   * call completes; by then the context has already ended, so that last case
   * changes nothing. It does not say which: near the deadline, count it as
   * the deadline, since the client's own deadline timer resets the stream at
   * about the moment the server's fires, in either order. Told now, not at
   * the read, so that the clock is read when it happens.
   */
  readonly #onCancelled = () => {
    if (this.#ended !== undefined || this.#controller?.signal.aborted) return;
    this.#end(
      Date.now() >= this.#deadlineMs - deadlineSlackMs
        ? new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)
        : new ConnectError("the client canceled the call", Code.Canceled),
    );
  };

  readonly #onShutdown = () => this.#end(this.#shutdownSignal?.reason);
}

function peerOf(call: Call): string | undefined {
  const peer = call.getPeer();
  return peer === "unknown" ? undefined : peer;
}

function decode<I extends DescMessage>(schema: I, bytes: Buffer): MessageShape<I> {
  try {
    return fromBinary(schema, bytes);
  } catch {
    throw new ConnectError(
      `request is not a valid ${schema.typeName} message`,
      Code.InvalidArgument,
    );
  }
}

function encode<O extends DescMessage>(schema: O, init: MessageInitShape<O>): Buffer {
  const byHand = encodeByHand(schema, init);
  if (byHand !== undefined) return byHand;
  // Handlers may return an init object rather than a message; create()
  // returns a message as is.
  const bytes = toBinary(schema, create(schema, init));
  // grpc-js frames responses with Buffer#copy, so it needs a Buffer; this
  // one is a view of the same memory.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function identity(bytes: Buffer): Buffer {
  return bytes;
}

/**
 * Maps what a handler threw to the status sent. Only a `ConnectError` was
 * written for the caller; the abort errors of our own signals say nothing
 * about internals. Everything else is hidden behind INTERNAL.
 */
function errorStatus(reason: unknown, context: CallContext): Partial<grpc.StatusObject> {
  let error: ConnectError;
  if (reason instanceof ConnectError) {
    error = reason;
  } else if (
    reason instanceof Error &&
    (reason.name === "AbortError" || reason.name === "TimeoutError")
  ) {
    error = ConnectError.from(reason);
  } else {
    error = new ConnectError("internal error", Code.Internal);
  }
  // setTrailerStatus adds the error's metadata and, when it has details, the
  // google.rpc.Status in grpc-status-details-bin, exactly as connect-node's
  // gRPC does; toMetadata drops the grpc-status and grpc-message it also sets,
  // which grpc-js writes itself from code and details.
  const trailer = setTrailerStatus(new Headers(context.responseTrailer), error);
  // connect's Code enum uses gRPC's numbers (checked by a test).
  return { code: error.code as number, details: error.rawMessage, metadata: toMetadata(trailer) };
}

/** Resolves when the stream can take more, or when the call is aborted. */
function drained(
  call: grpc.ServerWritableStream<Buffer, Buffer>,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    signal.addEventListener("abort", done);
  });
}

function sendHeaders(call: Call, context: CallContext): void {
  // Without headers of its own, grpc-js sends empty ones before the first
  // message, or a trailers-only response on error. A second call is ignored
  // by grpc-js, so headers set after the first message are lost, as the
  // HandlerContext contract says. One pass over the headers: they are
  // never empty (the chain sets x-request-id on every call).
  const metadata = toMetadata(context.responseHeader);
  if (metadata !== undefined) call.sendMetadata(metadata);
}

/**
 * Keys the application must not set: grpc-js writes the status itself (and
 * puts trailer metadata after it, so a stray grpc-status would win), and
 * connection-specific HTTP/2 headers make node:http2 throw inside grpc-js.
 */
const reservedKeys = new Set([
  "content-type",
  "te",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
]);

/** The headers gRPC may carry, as metadata; undefined when none is left. */
function toMetadata(headers: Headers): grpc.Metadata | undefined {
  let metadata: grpc.Metadata | undefined;
  headers.forEach((value, key) => {
    if (reservedKeys.has(key) || (key.startsWith("grpc-") && key !== "grpc-status-details-bin")) {
      return;
    }
    metadata ??= new grpc.Metadata();
    try {
      if (key.endsWith("-bin")) {
        // Headers joins repeated values with ", "; binary values are base64,
        // which has no commas.
        for (const part of value.split(",")) {
          metadata.add(key, Buffer.from(part.trim(), "base64"));
        }
      } else {
        metadata.add(key, value);
      }
    } catch {
      // grpc-js refuses keys and values that HTTP allows but gRPC does not
      // (a "!" in a key, a non-ASCII value). Such a header cannot be sent
      // over gRPC at all; dropping it beats failing a call whose work is
      // already done.
    }
  });
  return metadata;
}
