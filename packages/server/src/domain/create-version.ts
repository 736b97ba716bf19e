import { resolveAddress } from "./addressing.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { createInBatch } from "./create-batch.ts";
import type { CreatedVersion } from "./new-version.ts";
import { checkCrc32, validateDescription } from "./validation.ts";

export interface CreateVersionInput {
  region: string;
  secretId: string;
  data: Uint8Array;
  dataCrc32?: number;
  description: string;
  enabled: boolean;
  disablePrevious: boolean;
  etag: string;
}

/**
 * Adds a version. Its revision is the secret's highest ever plus one (the
 * secret row is locked, so two creates never take the same number, and a
 * destroyed revision is never given out again).
 *
 * Concurrent creates in a region are written together (create-batch.ts);
 * a create alone takes createAlone's four round trips (new-version.ts).
 */
export async function createVersion(
  domain: DomainDeps,
  caller: Caller,
  input: CreateVersionInput,
): Promise<CreatedVersion> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const description = validateDescription(input.description);
  const crc = checkCrc32(input.data, input.dataCrc32);
  return createInBatch(domain, region, {
    caller,
    region: region.name,
    secretId: id,
    input,
    description,
    crc,
  });
}
