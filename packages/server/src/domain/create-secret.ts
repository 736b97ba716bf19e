import { randomUUID } from "node:crypto";
import { seal, versionAad } from "../crypto/envelope.ts";
import type { Db, Tx } from "../db/client.ts";
import { pgErrorCode } from "../db/errors.ts";
import { lockProjectShared } from "../db/projects.ts";
import { secrets } from "../db/schema.ts";
import { getSecretView, type SecretView } from "../db/secrets.ts";
import { inTransaction, inTransactionThenAnnounce } from "../db/tx.ts";
import { findVersion, insertVersion, type VersionMeta } from "../db/versions.ts";
import { resolveAddress } from "./addressing.ts";
import { recordInTransaction } from "./audit.ts";
import { authorizePlacement, projectNotFound } from "./authz.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import {
  type EphemeralPolicyInput,
  policyColumns,
  propertiesFromPolicy,
} from "./ephemeral-policy.ts";
import { alreadyExists } from "./errors.ts";
import { checkSecretQuota } from "./limits.ts";
import { type SecretKind, validatePayload } from "./payload-types.ts";
import {
  checkCrc32,
  normalizePath,
  normalizeTags,
  validateDescription,
  validateName,
} from "./validation.ts";

export interface CreateSecretInput {
  region: string;
  projectId: string;
  name: string;
  path: string;
  type: SecretKind;
  description: string;
  tags: string[];
  protected: boolean;
  ephemeralPolicy?: EphemeralPolicyInput;
  firstVersion?: { data: Uint8Array; dataCrc32?: number; description: string };
}

/**
 * Creates a secret and, when the request carries one, its first (enabled)
 * version. The project must exist: a secret in a project that does not is
 * listed nowhere (NOT_FOUND naming the project, the same answer a caller
 * without grants on it gets).
 */
export async function createSecret(
  domain: DomainDeps,
  caller: Caller,
  input: CreateSecretInput,
): Promise<{ secret: SecretView; firstVersion?: VersionMeta & { latest: boolean } }> {
  const { region, id: projectId } = resolveAddress(domain, caller, input, "projectId");
  const name = validateName(input.name);
  const path = normalizePath(input.path);
  const tags = normalizeTags(input.tags);
  const description = validateDescription(input.description);
  const policy = input.ephemeralPolicy && policyColumns(input.ephemeralPolicy);
  authorizePlacement(caller, projectId, path);
  const first = input.firstVersion;
  let crc = 0;
  if (first !== undefined) {
    validatePayload(input.type, first.data, "first_version.data");
    validateDescription(first.description, "first_version.description");
    crc = checkCrc32(first.data, first.dataCrc32, "first_version.data_crc32");
  }
  const id = randomUUID();
  // Sealed before the transaction: encryption needs no lock.
  const sealed = first && seal(first.data, versionAad(id, 1), domain.keyRing());
  try {
    return await inProjectTransaction(domain, region, projectId, async (tx) => {
      await checkSecretQuota(tx, domain, region.name, projectId);
      const row = {
        id,
        projectId,
        region: region.name,
        name,
        path,
        type: input.type,
        description,
        tags,
        protected: input.protected,
        ttlMs: policy?.ttlMs ?? null,
        expiresOnceAccessed: policy?.expiresOnceAccessed ?? null,
        ephemeralAction: policy?.ephemeralAction ?? null,
        lastRevision: first ? 1 : 0,
      };
      await tx.insert(secrets).values(row);
      if (first !== undefined && sealed !== undefined) {
        await insertVersion(tx, {
          secretId: id,
          revision: 1,
          status: "enabled",
          description: first.description,
          dataCrc32: crc,
          ...sealed,
          ...propertiesFromPolicy(row, true),
        });
      }
      await recordInTransaction(tx, caller.audit, {
        secretId: id,
        secretPath: path,
        secretName: name,
        ...(first && { revision: 1 }),
      });
      const secret = await getSecretView(tx, id);
      const firstVersion = first && (await findVersion(tx, id, { kind: "number", revision: 1 }));
      return { secret, ...(firstVersion && { firstVersion }) };
    });
  } catch (err) {
    if (pgErrorCode(err) === "23505") {
      throw alreadyExists(
        `a secret named "${name}" already exists at path "${path}" in this project and region`,
        { resource: { type: "secret", id: `${path === "/" ? "" : path}/${name}` } },
      );
    }
    throw err;
  }
}

/**
 * inTransactionThenAnnounce for a change that puts a secret into a project:
 * the project must exist (NOT_FOUND naming it, else), and it cannot be
 * deleted until the change commits. Projects live in the home region's
 * database: when the secret's region is the home region the check and its
 * share lock are part of the change's own transaction; otherwise a home
 * transaction holds the lock around the region's transaction.
 */
async function inProjectTransaction<T>(
  domain: Pick<DomainDeps, "announce" | "regions">,
  region: { name: string; db: Db },
  projectId: string,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const requireProject = async (tx: Tx) => {
    if (!(await lockProjectShared(tx, projectId))) throw projectNotFound(projectId);
  };
  const home = domain.regions.resolve("");
  if (home.db === region.db) {
    return inTransactionThenAnnounce(domain, region, async (tx) => {
      await requireProject(tx);
      return fn(tx);
    });
  }
  return inTransaction(home.db, async (htx) => {
    await requireProject(htx);
    return inTransactionThenAnnounce(domain, region, fn);
  });
}
