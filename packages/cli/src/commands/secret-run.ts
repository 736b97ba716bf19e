import { crc32 } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import {
  BrowseSecretsResponseSchema,
  CreateSecretResponseSchema,
  DeleteSecretResponseSchema,
  EphemeralAction,
  EphemeralActionSchema,
  type EphemeralPolicy,
  EphemeralPolicySchema,
  GetSecretResponseSchema,
  type ListSecretsOrderBy,
  ListSecretsOrderBySchema,
  ListSecretsResponseSchema,
  ListSecretTypesResponseSchema,
  ListTagsResponseSchema,
  ProtectSecretResponseSchema,
  RestoreSecretResponseSchema,
  type Secret,
  SecretStatusSchema,
  SecretType,
  SecretTypeSchema,
  UnprotectSecretResponseSchema,
  UpdateSecretResponseSchema,
} from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Run, Runs } from "../args.ts";
import { type Connection, connect, requireProject } from "../connection.ts";
import type { Context } from "../context.ts";
import { CliError, ExitCode, UsageError } from "../errors.ts";
import {
  checkGeneratedType,
  checkShowGenerated,
  generatedNote,
  generatePayload,
  parseGenerate,
} from "../generate.ts";
import {
  enumName,
  formatDetails,
  formatTime,
  fullPath,
  jsonText,
  parseEnum,
  parseOutputFormat,
} from "../output.ts";
import { payloadSource, readPayload, shapePayload } from "../payload.ts";
import { parseDuration, parseFolder, parseSecretRef } from "../refs.ts";
import { listPages, printListing, resolveSecretId } from "../resolve.ts";
import { inFlagTerms } from "../rpc-errors.ts";
import type { SECRET } from "./secret.ts";

/** A secret's status in a few words: `ready`, `locked, protected`. */
function statusText(s: Secret): string {
  return [enumName(SecretStatusSchema, s.status), s.protected ? "protected" : ""]
    .filter(Boolean)
    .join(", ");
}

/** An ephemeral policy in words: `ttl 1h, single access, then delete`. */
export function policyText(p: EphemeralPolicy | undefined): string {
  if (p === undefined) return "";
  const parts: string[] = [];
  if (p.timeToLive !== undefined) parts.push(`ttl ${formatDuration(durationMs(p.timeToLive))}`);
  if (p.expiresOnceAccessed) parts.push("single access");
  parts.push(`then ${p.action === EphemeralAction.DELETE ? "delete" : "disable"}`);
  return parts.join(", ");
}

/** `1h30m`, `45s`, `7d`. */
export function formatDuration(ms: number): string {
  const units: [string, number][] = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ];
  let rest = ms;
  let out = "";
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out || "0s";
}

/** A secret as `key: value` lines. */
export function secretDetails(s: Secret): string {
  return formatDetails([
    ["secret", fullPath(s.path, s.name)],
    ["id", s.id],
    ["project", s.projectId],
    ["region", s.region],
    ["type", enumName(SecretTypeSchema, s.type)],
    ["status", statusText(s)],
    ["versions", String(s.versionCount)],
    ["tags", s.tags.join(", ")],
    ["description", s.description],
    ["ephemeral", policyText(s.ephemeralPolicy)],
    ["created", formatTime(s.createdAt)],
    ["updated", formatTime(s.updatedAt)],
    ["deletion requested", formatTime(s.deletionRequestedAt)],
    ["etag", s.etag],
  ]);
}

/** Builds a policy from the flags, over `base` (the current policy, for updates). */
function policyFrom(
  values: {
    ttl?: string;
    "single-access"?: boolean;
    "expiry-action"?: string;
    "no-ttl"?: boolean;
    "no-single-access"?: boolean;
  },
  base: EphemeralPolicy | undefined,
): EphemeralPolicy | undefined {
  const touched =
    values.ttl !== undefined ||
    values["single-access"] ||
    values["expiry-action"] !== undefined ||
    values["no-ttl"] ||
    values["no-single-access"];
  if (!touched) return undefined;
  if (values.ttl !== undefined && values["no-ttl"])
    throw new UsageError("--ttl and --no-ttl contradict");
  if (values["single-access"] && values["no-single-access"]) {
    throw new UsageError("--single-access and --no-single-access contradict");
  }
  const policy = create(EphemeralPolicySchema, base ?? {});
  if (values.ttl !== undefined)
    policy.timeToLive = durationFromMs(parseDuration(values.ttl, "--ttl"));
  if (values["no-ttl"]) policy.timeToLive = undefined;
  if (values["single-access"]) policy.expiresOnceAccessed = true;
  if (values["no-single-access"]) policy.expiresOnceAccessed = false;
  if (values["expiry-action"] !== undefined) {
    policy.action = parseEnum(EphemeralActionSchema, values["expiry-action"], "--expiry-action");
  }
  if (policy.timeToLive === undefined && !policy.expiresOnceAccessed) {
    throw new UsageError(
      base === undefined
        ? "--expiry-action goes with --ttl or --single-access"
        : "an ephemeral policy needs a ttl or single access: it can be changed, never removed",
    );
  }
  return policy;
}

/** `name`, `name_desc`, `created_at`... as the proto's order. */
function parseOrder(text: string): ListSecretsOrderBy {
  const t = text.toLowerCase();
  const full = t.endsWith("_asc") || t.endsWith("_desc") ? t : `${t}_asc`;
  try {
    return parseEnum<ListSecretsOrderBy>(ListSecretsOrderBySchema, full, "--order-by");
  } catch {
    throw new UsageError(
      `--order-by must be name, name_desc, created_at, created_at_desc, updated_at or updated_at_desc (got "${text}")`,
    );
  }
}

/**
 * A refused delete of a protected secret, told in CLI terms: the server's
 * FAILED_PRECONDITION names the RPC to call, the user needs the command.
 * Whether the secret is protected is read back rather than guessed from the
 * message; any other error passes through as it came.
 */
async function explainProtected(
  conn: Connection,
  err: unknown,
  secretId: string,
  shown: string,
): Promise<unknown> {
  if (!(err instanceof ConnectError) || err.code !== Code.FailedPrecondition) return err;
  const got = await conn.secrets
    .getSecret({ region: conn.settings.region, secretId })
    .catch(() => undefined);
  if (got?.secret?.protected !== true) return err;
  return new CliError(
    `secret ${shown} is protected: it cannot be deleted (FAILED_PRECONDITION)`,
    ExitCode.Conflict,
    `run "coffer secret unprotect ${shown}" first, then delete it`,
  );
}

/** `protect` and `unprotect`. */
function protection(protect: boolean): Run<typeof SECRET.protect> {
  return async (ctx, { values, args }) => {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const req = { region: conn.settings.region, secretId, etag: values.etag ?? "" };
    if (protect) {
      const res = await conn.secrets.protectSecret(req);
      if (format === "json") return write(ctx, jsonText(ProtectSecretResponseSchema, res));
    } else {
      const res = await conn.secrets.unprotectSecret(req);
      if (format === "json") return write(ctx, jsonText(UnprotectSecretResponseSchema, res));
    }
    return write(ctx, `${protect ? "Protected" : "Unprotected"} secret ${ref.text}.\n`);
  };
}

/** `1 secret`, `2 secrets`. */
function count(n: number | bigint, noun: string): string {
  return `${n} ${noun}${n === 1 || n === 1n ? "" : "s"}`;
}

async function write(ctx: Context, text: string): Promise<undefined> {
  await ctx.io.stdout.write(text);
  return undefined;
}

/** What the commands of `coffer secret` (secret.ts) do. */
export const run: Runs<typeof SECRET> = {
  async create(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    if (ref.kind !== "path") {
      throw new UsageError(`a new secret is named by /path/name, not by id (got "${ref.text}")`);
    }
    const format = parseOutputFormat(values.output);
    const type =
      values.type === undefined
        ? SecretType.OPAQUE
        : parseEnum<SecretType>(SecretTypeSchema, values.type, "--type");
    const policy = policyFrom(values, undefined);
    const generated = parseGenerate(values);
    if (generated !== undefined) checkGeneratedType(enumName(SecretTypeSchema, type));
    checkShowGenerated(values, format);
    const read =
      generated !== undefined
        ? generatePayload(generated)
        : await readPayload(ctx, values, { required: false });
    const data = read === undefined ? undefined : shapePayload(type, read);
    if (data === undefined && values["version-description"] !== undefined) {
      throw new UsageError(
        "--version-description needs a first version: give --data, --from-file or --generate",
      );
    }
    const conn = await connect(ctx, values);
    const projectId = await requireProject(conn);
    const res = await conn.secrets
      .createSecret({
        region: conn.settings.region,
        projectId,
        path: ref.path,
        name: ref.name,
        type,
        description: values.description ?? "",
        tags: values.tag ?? [],
        protected: values.protected ?? false,
        ...(policy !== undefined && { ephemeralPolicy: policy }),
        ...(data !== undefined && {
          firstVersion: {
            data,
            dataCrc32: crc32(data),
            description: values["version-description"] ?? "",
          },
        }),
      })
      .catch(
        inFlagTerms({
          "first_version.data": generated !== undefined ? "--generate" : payloadSource(values),
          "first_version.description": "--version-description",
          description: "--description",
          tags: "--tag",
          "ephemeral_policy.time_to_live": "--ttl",
          "ephemeral_policy.action": "--expiry-action",
        }),
      );
    if (generated !== undefined && !values["show-generated"]) {
      await ctx.io.stderr.write(generatedNote(generated));
    }
    if (format === "json") return write(ctx, jsonText(CreateSecretResponseSchema, res));
    const s = res.secret;
    const version = res.firstVersion
      ? ` with version ${res.firstVersion.revision}`
      : " (no version yet)";
    const done = `Created secret ${ref.text} (${enumName(SecretTypeSchema, s?.type ?? type)})${version}.\nid: ${s?.id ?? ""}\n`;
    if (generated !== undefined && values["show-generated"] && data !== undefined) {
      // The value alone on stdout, for VALUE=$(coffer secret create ...).
      await ctx.io.stderr.write(done);
      await ctx.io.stdout.write(data);
      await ctx.io.stdout.write("\n");
      return undefined;
    }
    await ctx.io.stdout.write(done);
    return undefined;
  },

  async get(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref, {
      deleted: values.deleted ?? false,
      deletedFlag: true,
    });
    const res = await conn.secrets.getSecret({ region: conn.settings.region, secretId });
    if (format === "json") return write(ctx, jsonText(GetSecretResponseSchema, res));
    return write(ctx, res.secret ? secretDetails(res.secret) : "");
  },

  async list(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const prefix = args[0] === undefined ? undefined : parseFolder(args[0], "PREFIX");
    const folder = values.path === undefined ? undefined : parseFolder(values.path, "--path");
    if (prefix !== undefined && folder !== undefined) {
      throw new UsageError("give a PREFIX (recursive) or --path (one folder), not both");
    }
    const type =
      values.type === undefined
        ? undefined
        : parseEnum<SecretType>(SecretTypeSchema, values.type, "--type");
    const orderBy = values["order-by"] === undefined ? undefined : parseOrder(values["order-by"]);
    const conn = await connect(ctx, values);
    const projectId = await requireProject(conn);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.secrets.listSecrets({
        region: conn.settings.region,
        projectId,
        ...(values.name !== undefined && { name: values.name }),
        ...(folder !== undefined && { path: folder }),
        ...(prefix !== undefined && prefix !== "/" && { pathPrefix: prefix }),
        tags: values.tag ?? [],
        ...(type !== undefined && { type }),
        ...(values.ephemeral && { ephemeral: true }),
        ...(values.protected && { protected: true }),
        ...(values.deleted && { scheduledForDeletion: true }),
        ...(orderBy !== undefined && { orderBy }),
        page,
        pageSize,
        pageToken,
      });
      return { items: res.secrets, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListSecretsResponseSchema,
          create(ListSecretsResponseSchema, {
            secrets: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["SECRET", "TYPE", "VERSIONS", "STATUS", "TAGS", "UPDATED", "ID"],
      row: (s) => [
        fullPath(s.path, s.name),
        enumName(SecretTypeSchema, s.type),
        String(s.versionCount),
        statusText(s),
        s.tags.join(","),
        formatTime(s.updatedAt),
        s.id,
      ],
      noun: "secrets",
    });
  },

  async update(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    if (values.tag !== undefined && values["clear-tags"]) {
      throw new UsageError("--tag and --clear-tags contradict");
    }
    const edits = [...(values["add-tag"] ?? []), ...(values["remove-tag"] ?? [])];
    if (edits.length > 0 && (values.tag !== undefined || values["clear-tags"])) {
      throw new UsageError(
        `--add-tag and --remove-tag change the tag list; --${values.tag !== undefined ? "tag" : "clear-tags"} replaces it: give one or the other`,
      );
    }
    const both = (values["add-tag"] ?? []).filter((t) => values["remove-tag"]?.includes(t));
    if (both.length > 0) throw new UsageError(`--add-tag and --remove-tag both name "${both[0]}"`);
    const path = values.path === undefined ? undefined : parseFolder(values.path, "--path");
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const region = conn.settings.region;
    const touchesPolicy =
      values.ttl !== undefined ||
      values["single-access"] ||
      values["expiry-action"] !== undefined ||
      values["no-ttl"] ||
      values["no-single-access"];
    let policy: EphemeralPolicy | undefined;
    const current =
      touchesPolicy || edits.length > 0
        ? (await conn.secrets.getSecret({ region, secretId })).secret
        : undefined;
    if (touchesPolicy) {
      policy = policyFrom(values, current?.ephemeralPolicy ?? create(EphemeralPolicySchema));
    }
    let tags = values["clear-tags"] ? [] : values.tag;
    // The list is edited as read: sending it with the etag read makes the
    // server refuse it if someone changed the secret meanwhile.
    let etag = values.etag ?? "";
    if (edits.length > 0) {
      const removed = new Set(values["remove-tag"] ?? []);
      tags = [...(current?.tags ?? []), ...(values["add-tag"] ?? [])].filter(
        (t) => !removed.has(t),
      );
      if (etag === "") etag = current?.etag ?? "";
    }
    if (
      values.name === undefined &&
      path === undefined &&
      values.description === undefined &&
      tags === undefined &&
      policy === undefined
    ) {
      throw new UsageError(
        "nothing to update: give --name, --path, --description, --tag, --add-tag, --remove-tag, --clear-tags or an ephemeral flag",
      );
    }
    const res = await conn.secrets
      .updateSecret({
        region,
        secretId,
        ...(values.name !== undefined && { name: values.name }),
        ...(path !== undefined && { path }),
        ...(values.description !== undefined && { description: values.description }),
        ...(tags !== undefined && { tags: { values: tags } }),
        ...(policy !== undefined && { ephemeralPolicy: policy }),
        etag,
      })
      .catch(
        inFlagTerms({
          name: "--name",
          path: "--path",
          description: "--description",
          tags: edits.length > 0 ? "--add-tag" : "--tag",
          "ephemeral_policy.time_to_live": "--ttl",
          "ephemeral_policy.action": "--expiry-action",
          etag: "--etag",
        }),
      );
    if (format === "json") return write(ctx, jsonText(UpdateSecretResponseSchema, res));
    return write(ctx, res.secret ? secretDetails(res.secret) : "");
  },

  async delete(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const res = await conn.secrets
      .deleteSecret({ region: conn.settings.region, secretId, etag: values.etag ?? "" })
      .catch(async (err: unknown) => {
        throw await explainProtected(
          conn,
          err,
          secretId,
          ref.kind === "path" ? ref.text : secretId,
        );
      });
    if (format === "json") return write(ctx, jsonText(DeleteSecretResponseSchema, res));
    return write(
      ctx,
      res.secret === undefined
        ? `Deleted secret ${ref.text} (ephemeral: deleted at once).\n`
        : `Scheduled secret ${ref.text} for deletion; undo with: coffer secret restore ${ref.kind === "path" ? ref.text : secretId}\n`,
    );
  },

  async restore(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref, { deleted: true });
    const res = await conn.secrets.restoreSecret({ region: conn.settings.region, secretId });
    if (format === "json") return write(ctx, jsonText(RestoreSecretResponseSchema, res));
    return write(ctx, `Restored secret ${ref.text}.\n`);
  },

  protect: protection(true),
  unprotect: protection(false),

  async browse(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const prefix = args[0] === undefined ? "/" : parseFolder(args[0], "FOLDER");
    const conn = await connect(ctx, values);
    const projectId = await requireProject(conn);
    let current = prefix;
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.secrets.browseSecrets({
        region: conn.settings.region,
        projectId,
        prefix,
        page,
        pageSize,
        pageToken,
      });
      current = res.currentPath;
      return { items: res.items, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          BrowseSecretsResponseSchema,
          create(BrowseSecretsResponseSchema, {
            currentPath: current,
            items: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["NAME", "KIND", "DETAIL"],
      row: (item) =>
        item.kind.case === "folder"
          ? [`${item.fullPath}/`, "folder", count(item.kind.value.secretCount, "secret")]
          : item.kind.case === "secret"
            ? [
                item.fullPath,
                "secret",
                `${enumName(SecretTypeSchema, item.kind.value.type)}, ${count(item.kind.value.versionCount, "version")}`,
              ]
            : [item.fullPath, "", ""],
      noun: `entries under ${current}`,
    });
  },

  async tags(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const projectId = await requireProject(conn);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.secrets.listTags({
        region: conn.settings.region,
        projectId,
        page,
        pageSize,
        pageToken,
      });
      return { items: res.tags, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListTagsResponseSchema,
          create(ListTagsResponseSchema, {
            tags: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["TAG"],
      row: (t) => [t],
      noun: "tags",
    });
  },

  async types(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const projectId = await requireProject(conn);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.secrets.listSecretTypes({
        region: conn.settings.region,
        projectId,
        page,
        pageSize,
        pageToken,
      });
      return { items: res.types, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListSecretTypesResponseSchema,
          create(ListSecretTypesResponseSchema, {
            types: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["TYPE"],
      row: (t) => [enumName(SecretTypeSchema, t)],
      noun: "types in use",
    });
  },
};
