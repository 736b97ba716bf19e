import { seal, versionAad } from "../crypto/envelope.ts";
import { updateSecret } from "../db/secrets.ts";
import {
  disableLatestEnabled,
  findVersion,
  insertVersion,
  type VersionMeta,
} from "../db/versions.ts";
import { recordInTransaction } from "./audit.ts";
import type { Caller, Domain } from "./context.ts";
import { checkVersionQuota } from "./limits.ts";
import { validatePayload } from "./payload-types.ts";
import {
  inChange,
  lockForChange,
  propertiesFromPolicy,
  regionFor,
  type SecretKind,
} from "./shared.ts";
import { checkCrc32, validateDescription, validateUuid } from "./validation.ts";

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
 */
export async function createVersion(
  domain: Domain,
  caller: Caller,
  input: CreateVersionInput,
): Promise<VersionMeta & { latest: boolean }> {
  const region = regionFor(domain, caller, input.region);
  const id = validateUuid(input.secretId, "secret_id");
  const description = validateDescription(input.description);
  const crc = checkCrc32(input.data, input.dataCrc32);
  return inChange(domain, region, async (tx) => {
    const secret = await lockForChange(tx, caller, region.name, id, input.etag);
    validatePayload(secret.type as SecretKind, input.data);
    await checkVersionQuota(tx, domain, id);
    const revision = secret.lastRevision + 1;
    if (input.disablePrevious) await disableLatestEnabled(tx, id);
    await insertVersion(tx, {
      secretId: id,
      revision,
      status: input.enabled ? "enabled" : "disabled",
      description,
      dataCrc32: crc,
      ...seal(input.data, versionAad(id, revision), domain.keyRing()),
      ...propertiesFromPolicy(secret, input.enabled),
    });
    await updateSecret(tx, id, { lastRevision: revision });
    await recordInTransaction(tx, caller.audit, { revision });
    const created = await findVersion(tx, id, { kind: "number", revision });
    if (created === undefined) throw new Error("version vanished inside its transaction");
    return created;
  });
}
