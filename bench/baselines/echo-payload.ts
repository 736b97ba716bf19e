import { create } from "@bufbuild/protobuf";
import {
  type AccessSecretVersionRequest,
  type AccessSecretVersionResponse,
  AccessSecretVersionResponseSchema,
  SecretType,
} from "@coffer/api";
import * as grpc from "@grpc/grpc-js";

/** The payload size every access benchmark serves. */
export const PAYLOAD_BYTES = 1024;

/** 1 KiB of fixed, non-secret bytes: what the echo baselines answer. */
export const ECHO_DATA = new Uint8Array(PAYLOAD_BYTES).map((_, i) => (i * 31 + 7) & 0xff);

/** The response an echo baseline builds per call: the same shape and size as Coffer's. */
export function echoResponse(req: AccessSecretVersionRequest): AccessSecretVersionResponse {
  return create(AccessSecretVersionResponseSchema, {
    secretId: req.secretId,
    revision: 1,
    data: ECHO_DATA,
    dataCrc32: 0x1234_5678,
    type: SecretType.OPAQUE,
  });
}

/** Prints `{"port":N}` on stdout (what the bench waits for) and exits 0 on SIGTERM. */
export function announce(port: number, close: () => void): void {
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.once("SIGTERM", () => {
    close();
    process.exit(0);
  });
}

/**
 * The JSON an echo baseline answers to a REST access: the fields and
 * sizes of Coffer's answer (the 1 KiB payload in base64), built per call.
 */
export function echoJson(secretId: string, revision: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      secret_id: secretId,
      revision,
      data: Buffer.from(ECHO_DATA).toString("base64"),
      data_crc32: 0x1234_5678,
      type: "opaque",
    }),
  );
}

/** Listens on 127.0.0.1:`BENCH_PORT` in cleartext, then announces the port. */
export function listenGrpc(server: grpc.Server): void {
  server.bindAsync(
    `127.0.0.1:${process.env.BENCH_PORT ?? 0}`,
    grpc.ServerCredentials.createInsecure(),
    (err, port) => {
      if (err !== null) throw err;
      announce(port, () => server.forceShutdown());
    },
  );
}
