import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createAsyncIterable,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";

/**
 * connect-node answers INTERNAL to a binary request body that does not
 * decode (connect-es's binary serialization maps every parse error to
 * Internal, before any interceptor runs), and to a gzip body that is not
 * gzip. Both are the client's fault: INVALID_ARGUMENT, as the grpc-js
 * listener answers. This wraps each handler so that its request body is
 * read first (up to the read limit), each message decompressed and decoded
 * once, and an undecodable one refused by raising the error from the body
 * itself, which every protocol of connect-node reports as the call's status.
 * Anything this check cannot judge (JSON, an incomplete envelope, an
 * unknown encoding, a body over the limit) passes through untouched for the
 * handler to answer as before.
 *
 * A Connect GET (the reads marked NO_SIDE_EFFECTS) carries its message in the
 * query string, which connect-node decodes with the same INTERNAL on failure:
 * it is checked here too, and refused with the Connect error response itself,
 * since a GET has no body to raise the error from.
 */
export function refuseUndecodable(
  handler: UniversalHandler,
  readMaxBytes: number,
): UniversalHandler {
  const wrapped = (req: UniversalServerRequest) => {
    if (req.method === "GET") {
      const refusal = undecodableQuery(req.url, handler.method.input, readMaxBytes);
      return refusal === undefined ? handler(req) : Promise.resolve(refusal);
    }
    const shape = bodyShape(req.header);
    if (shape === undefined || !isByteStream(req.body)) return handler(req);
    return handler({
      ...req,
      body: checked(req.body, shape, handler.method.input, readMaxBytes),
    });
  };
  return Object.assign(wrapped, handler);
}

/**
 * The Connect error response for a GET whose binary message (`encoding=proto`,
 * `base64=1` or not, `compression=gzip|br` or none) does not decode, read as
 * connect-node reads it; undefined for anything this check cannot judge.
 */
function undecodableQuery(
  url: string,
  schema: DescMessage,
  readMaxBytes: number,
): UniversalServerResponse | undefined {
  const query = new URL(url).searchParams;
  if (query.get("encoding") !== "proto") return undefined;
  const message = query.get("message") ?? "";
  try {
    const bytes =
      query.get("base64") === "1" ? base64Decode(message) : new TextEncoder().encode(message);
    const compression = query.get("compression");
    const plain =
      compression === null || compression === "identity"
        ? bytes
        : decompress(compression, bytes, readMaxBytes);
    if (plain !== undefined) decode(schema, plain);
    return undefined;
  } catch (err) {
    if (!(err instanceof ConnectError)) return undefined;
    return {
      status: codeToHttpStatus(err.code),
      header: new Headers({ "content-type": "application/json" }),
      body: createAsyncIterable([errorToJsonBytes(err, undefined)]),
    };
  }
}

/** How a binary body carries its message(s): bare (Connect unary) or in 5-byte envelopes. */
interface Shape {
  enveloped: boolean;
  /** The encoding of the body (bare) or of envelopes flagged compressed. */
  encoding: string | null;
}

function bodyShape(header: Headers): Shape | undefined {
  const type = (header.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  switch (type) {
    case "application/proto":
      return { enveloped: false, encoding: header.get("content-encoding") };
    case "application/connect+proto":
      return { enveloped: true, encoding: header.get("connect-content-encoding") };
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { enveloped: true, encoding: header.get("grpc-encoding") };
    default:
      return undefined;
  }
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

async function* checked(
  body: AsyncIterable<Uint8Array>,
  shape: Shape,
  schema: DescMessage,
  readMaxBytes: number,
): AsyncIterable<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await iterator.next();
    if (next.done) break;
    chunks.push(next.value);
    size += next.value.byteLength;
    // Over the limit (with room for envelope prefixes): the handler refuses it.
    if (size > readMaxBytes + 5 * 16) {
      yield* chunks;
      for (let n = await iterator.next(); !n.done; n = await iterator.next()) yield n.value;
      return;
    }
  }
  const all = Buffer.concat(chunks);
  if (shape.enveloped) {
    for (let at = 0; at + 5 <= all.length; ) {
      const flags = all.readUInt8(at);
      const length = all.readUInt32BE(at + 1);
      if (at + 5 + length > all.length) break;
      // An end-of-stream (Connect) or trailers (gRPC-Web) envelope is not a message.
      if ((flags & 0x80) === 0) {
        const data = all.subarray(at + 5, at + 5 + length);
        if ((flags & 0x01) === 0) decode(schema, data);
        else {
          const plain = decompress(shape.encoding, data, readMaxBytes);
          if (plain !== undefined) decode(schema, plain);
        }
      }
      at += 5 + length;
    }
  } else {
    const plain =
      shape.encoding === null || shape.encoding === "identity"
        ? all
        : decompress(shape.encoding, all, readMaxBytes);
    if (plain !== undefined) decode(schema, plain);
  }
  yield all;
}

function decode(schema: DescMessage, bytes: Uint8Array): void {
  try {
    fromBinary(schema, bytes);
  } catch {
    throw new ConnectError(
      `request is not a valid ${schema.typeName} message`,
      Code.InvalidArgument,
    );
  }
}

/**
 * The decompressed bytes, or undefined where the handler should judge: an
 * encoding other than gzip and br (its own answer: UNIMPLEMENTED, or
 * INTERNAL for a compressed envelope without an encoding, as the gRPC spec
 * asks), or output past the limit (RESOURCE_EXHAUSTED).
 */
function decompress(
  encoding: string | null,
  data: Uint8Array,
  readMaxBytes: number,
): Uint8Array | undefined {
  const inflate =
    encoding === "gzip" ? gunzipSync : encoding === "br" ? brotliDecompressSync : undefined;
  if (inflate === undefined) return undefined;
  try {
    return inflate(data, { maxOutputLength: readMaxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return undefined;
    throw new ConnectError(`request body is not valid ${encoding}`, Code.InvalidArgument);
  }
}
