import type { Interceptor } from "@connectrpc/connect";
import { crc32 } from "./crc32.ts";
import { ChecksumError } from "./errors.ts";

/** What an access answer carries, whichever RPC gave it. */
export interface AccessAnswer {
  secretId: string;
  revision: number;
  data: Uint8Array;
  dataCrc32: number;
}

/**
 * Throws a {@link ChecksumError} when `answer.data` does not match its
 * `dataCrc32`, after zeroing the data so that corrupted secret bytes do not
 * linger. An answer without data (a single-access version read with
 * `no_consume`) announces 0, the CRC-32 of no bytes, and passes.
 */
export function verifyChecksum(answer: AccessAnswer): void {
  const actual = crc32(answer.data);
  if (actual !== answer.dataCrc32) {
    answer.data.fill(0);
    throw new ChecksumError(answer.secretId, answer.revision, answer.dataCrc32, actual);
  }
}

const ACCESS_METHODS = new Set(["AccessSecretVersion", "AccessSecretVersionByPath"]);

/**
 * Verifies the CRC-32 of every AccessSecretVersion and
 * AccessSecretVersionByPath answer before the caller sees it; a mismatch
 * throws {@link ChecksumError} (DATA_LOSS) instead of returning data.
 */
export const verifyChecksums: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (
    !res.stream &&
    res.service.typeName === "coffer.secretmanager.v1.SecretService" &&
    ACCESS_METHODS.has(res.method.name)
  ) {
    verifyChecksum(res.message as unknown as AccessAnswer);
  }
  return res;
};
