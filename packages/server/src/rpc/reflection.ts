import {
  create,
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  ServerReflection as ServerReflectionV1,
} from "@coffer/api/grpc/reflection/v1";
import { ServerReflection as ServerReflectionV1alpha } from "@coffer/api/grpc/reflection/v1alpha";
import * as grpc from "@grpc/grpc-js";

/** The two versions of the reflection service, both served. */
export const reflectionServices: readonly DescService[] = [
  ServerReflectionV1,
  ServerReflectionV1alpha,
];

/**
 * What reflection can describe: the files of the services served and every
 * file they import, transitively (google/protobuf/*.proto included), from
 * the same protobuf-es descriptors the server encodes and decodes with, so
 * it can never describe an API other than the one served.
 */
export class DescriptorIndex {
  readonly services: string[];
  private readonly files = new Map<string, DescFile>();
  private readonly encoded = new Map<DescFile, Uint8Array>();
  private readonly symbols = new Map<string, DescFile>();
  /** Extendee type name -> field number -> the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();

  constructor(services: readonly DescService[]) {
    this.services = services.map((s) => s.typeName);
    for (const s of services) this.addFile(s.file);
  }

  /** A file by its name, e.g. `coffer/secretmanager/v1/secret_service.proto`. */
  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /**
   * The file declaring a fully-qualified symbol: a message, enum, enum value,
   * field, oneof, service, method or extension (a leading dot is allowed).
   */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.replace(/^\./, ""));
  }

  fileContainingExtension(extendee: string, number: number): DescFile | undefined {
    return this.extensions.get(extendee.replace(/^\./, ""))?.get(number);
  }

  /** The extension numbers of a message type; undefined for an unknown type. */
  extensionNumbers(typeName: string): number[] | undefined {
    const name = typeName.replace(/^\./, "");
    const file = this.symbols.get(name);
    if (file === undefined) return undefined;
    return [...(this.extensions.get(name)?.keys() ?? [])];
  }

  /**
   * The serialized FileDescriptorProtos of `file` and of all its transitive
   * imports, the file first. Every answer is complete, even when the stream
   * sent some of these files before: the protocol allows leaving those out,
   * but not every client caches them (grpc-java also sends them all).
   */
  withDependencies(file: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const queue = [file];
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      if (seen.has(f)) continue;
      seen.add(f);
      out.push(this.bytes(f));
      queue.push(...f.dependencies);
    }
    return out;
  }

  private bytes(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    if (this.files.has(fileName(file))) return;
    this.files.set(fileName(file), file);
    for (const dep of file.dependencies) this.addFile(dep);
    for (const m of file.messages) this.addMessage(m);
    for (const e of file.enums) this.addEnum(e);
    for (const x of file.extensions) this.addExtension(x);
    for (const s of file.services) {
      this.symbols.set(s.typeName, file);
      for (const m of s.methods) this.symbols.set(`${s.typeName}.${m.name}`, file);
    }
  }

  private addMessage(message: DescMessage): void {
    this.symbols.set(message.typeName, message.file);
    for (const f of message.fields) this.symbols.set(`${message.typeName}.${f.name}`, message.file);
    for (const o of message.oneofs) this.symbols.set(`${message.typeName}.${o.name}`, message.file);
    for (const m of message.nestedMessages) this.addMessage(m);
    for (const e of message.nestedEnums) this.addEnum(e);
    for (const x of message.nestedExtensions) this.addExtension(x);
  }

  private addEnum(e: DescEnum): void {
    this.symbols.set(e.typeName, e.file);
    // Enum values are scoped beside their enum, not inside it (C++ scoping).
    const scope = e.typeName.slice(0, e.typeName.length - e.name.length);
    for (const v of e.values) this.symbols.set(`${scope}${v.name}`, e.file);
  }

  private addExtension(x: DescExtension): void {
    this.symbols.set(x.typeName, x.file);
    let numbers = this.extensions.get(x.extendee.typeName);
    if (numbers === undefined) {
      numbers = new Map();
      this.extensions.set(x.extendee.typeName, numbers);
    }
    numbers.set(x.number, x.file);
  }
}

function fileName(file: DescFile): string {
  return file.proto.name;
}

type Response = MessageInitShape<typeof ServerReflectionResponseSchema>;

const NOT_FOUND = grpc.status.NOT_FOUND;

/** The answer to one reflection request. */
export function answer(index: DescriptorIndex, req: ServerReflectionRequest): Response {
  const base = { validHost: req.host, originalRequest: req };
  const files = (file: DescFile | undefined, what: string): Response =>
    file === undefined
      ? { ...base, messageResponse: error(NOT_FOUND, `${what} not found`) }
      : {
          ...base,
          messageResponse: {
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: index.withDependencies(file) },
          },
        };
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        },
      };
    case "fileByFilename":
      return files(index.fileByName(r.value), `file "${r.value}"`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(r.value), `symbol "${r.value}"`);
    case "fileContainingExtension":
      return files(
        index.fileContainingExtension(r.value.containingType, r.value.extensionNumber),
        `extension ${r.value.extensionNumber} of "${r.value.containingType}"`,
      );
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(r.value);
      if (numbers === undefined) {
        return { ...base, messageResponse: error(NOT_FOUND, `type "${r.value}" not found`) };
      }
      return {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: r.value.replace(/^\./, ""), extensionNumber: numbers },
        },
      };
    }
    default:
      return {
        ...base,
        messageResponse: error(grpc.status.INVALID_ARGUMENT, "the request sets no message_request"),
      };
  }
}

function error(code: grpc.status, message: string) {
  return {
    case: "errorResponse" as const,
    value: { errorCode: code, errorMessage: message },
  };
}

/** Ends the reflection streams still open. */
export type CloseReflection = () => void;

/**
 * Serves grpc.reflection.v1 and v1alpha on a grpc-js server, describing
 * `services` (add the reflection services themselves to list them too).
 * Reflection is a bidirectional stream, which the connect-es adapter does
 * not serve, so it is registered on grpc-js directly. Like the health
 * service, it is outside the call chain and needs no token: it describes
 * the public API, whose protos are published anyway.
 *
 * The two versions share one wire format (they differ only in package), so
 * the v1 messages encode and decode both.
 */
export function addReflection(
  server: grpc.Server,
  services: readonly DescService[],
): CloseReflection {
  const index = new DescriptorIndex(services);
  const open = new Set<grpc.ServerDuplexStream<Buffer, Buffer>>();
  const handler: grpc.handleBidiStreamingCall<Buffer, Buffer> = (call) => {
    open.add(call);
    const done = () => open.delete(call);
    call.on("data", (bytes: Buffer) => {
      let req: ServerReflectionRequest;
      try {
        req = fromBinary(ServerReflectionRequestSchema, bytes);
      } catch {
        done();
        call.emit("error", {
          code: grpc.status.INVALID_ARGUMENT,
          details: "request is not a valid grpc.reflection.v1.ServerReflectionRequest",
        });
        return;
      }
      const res = toBinary(
        ServerReflectionResponseSchema,
        create(ServerReflectionResponseSchema, answer(index, req)),
      );
      call.write(Buffer.from(res.buffer, res.byteOffset, res.byteLength));
    });
    call.on("end", () => {
      done();
      call.end();
    });
    call.on("cancelled", done);
    // A client that goes away mid-stream is not a server error.
    call.on("error", done);
  };
  for (const service of reflectionServices) {
    const method = service.methods[0];
    if (method === undefined) throw new Error(`${service.typeName} has no method`);
    const path = `/${service.typeName}/${method.name}`;
    server.addService(
      {
        [method.localName]: {
          path,
          originalName: method.localName,
          requestStream: true,
          responseStream: true,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      },
      { [method.localName]: handler },
    );
  }
  return () => {
    for (const call of open) {
      call.emit("error", { code: grpc.status.UNAVAILABLE, details: "the server is shutting down" });
    }
    open.clear();
  };
}

function identity(bytes: Buffer): Buffer {
  return bytes;
}
