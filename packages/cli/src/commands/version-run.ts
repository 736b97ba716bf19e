import { crc32 } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AccessSecretVersionByPathResponseSchema,
  AccessSecretVersionResponseSchema,
  CreateSecretVersionResponseSchema,
  DeleteSecretVersionResponseSchema,
  DestroySecretVersionResponseSchema,
  DisableSecretVersionResponseSchema,
  EnableSecretVersionResponseSchema,
  EphemeralAction,
  EphemeralActionSchema,
  type EphemeralProperties,
  EphemeralPropertiesSchema,
  GetSecretVersionResponseSchema,
  ListSecretVersionsResponseSchema,
  RestoreSecretVersionResponseSchema,
  SecretTypeSchema,
  type SecretVersion,
  UpdateSecretVersionResponseSchema,
  type VersionStatus,
  VersionStatusSchema,
} from "@coffer/api";
import type { Run, Runs } from "../args.ts";
import { connect, requireProject } from "../connection.ts";
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
  jsonText,
  parseEnum,
  parseOutputFormat,
} from "../output.ts";
import { mayNeedShaping, payloadSource, readPayload, shapePayload } from "../payload.ts";
import {
  parseDuration,
  parseRevision,
  parseSecretRef,
  parseTime,
  type SecretRef,
} from "../refs.ts";
import { listPages, printListing, resolveSecretId } from "../resolve.ts";
import { inFlagTerms } from "../rpc-errors.ts";
import type { StateVerb, VERSION } from "./version.ts";

/** A version's ephemeral properties in words. */
function propertiesText(p: EphemeralProperties | undefined): string {
  if (p === undefined) return "";
  const parts: string[] = [];
  if (p.expiresAt !== undefined) parts.push(`expires ${formatTime(p.expiresAt)}`);
  if (p.expiresOnceAccessed) parts.push("single access");
  parts.push(`then ${p.action === EphemeralAction.DELETE ? "delete" : "disable"}`);
  return parts.join(", ");
}

/** A version as `key: value` lines. */
export function versionDetails(ref: SecretRef, v: SecretVersion): string {
  return formatDetails([
    ["secret", ref.kind === "path" ? `${ref.text} (${v.secretId})` : v.secretId],
    ["revision", String(v.revision)],
    ["status", enumName(VersionStatusSchema, v.status)],
    ["latest", v.latest ? "yes" : "no"],
    ["description", v.description],
    ["ephemeral", propertiesText(v.ephemeralProperties)],
    ["created", formatTime(v.createdAt)],
    ["updated", formatTime(v.updatedAt)],
    ["deletion requested", formatTime(v.deletionRequestedAt)],
    ["deleted", formatTime(v.deletedAt)],
  ]);
}

/**
 * One top-level field of a JSON object payload.
 * @throws CliError: exit 1 when the payload is not a JSON object, 3 when the
 * field is missing. Messages never quote the payload.
 */
export function fieldOf(data: Uint8Array, field: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch {
    throw new CliError(
      "--field needs a JSON object payload, and this payload is not JSON",
      ExitCode.Failure,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CliError(
      "--field needs a JSON object payload, and this payload is not an object",
      ExitCode.Failure,
    );
  }
  if (!Object.hasOwn(value, field)) {
    throw new CliError(`the payload has no field "${field}"`, ExitCode.NotFound);
  }
  return (value as Record<string, unknown>)[field];
}

/** Whether bytes are UTF-8 text without control characters other than tab and newlines. */
export function isUtf8Text(data: Uint8Array): boolean {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return false;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting them is the point.
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text);
}

/** What the other state changes print: "Enabled version 2 of /prod/db.". */
const DONE = { enable: "Enabled", disable: "Disabled", restore: "Restored" } as const;

/** `enable`, `disable`, `delete`, `restore` and `destroy`: one call each. */
function stateCommand(verb: StateVerb): Run<typeof VERSION.enable> {
  return async (ctx, { values, args }) => {
    const ref = parseSecretRef(args[0] as string);
    const revision = parseRevision(args[1] as string);
    const format = parseOutputFormat(values.output);
    if (verb === "destroy" && !values.yes) {
      throw new UsageError(
        `"coffer version destroy" destroys the payload at once and cannot be undone: add --yes (to schedule it for deletion, restorable, use "coffer version delete")`,
      );
    }
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const req = { region: conn.settings.region, secretId, revision, etag: values.etag ?? "" };
    let version: SecretVersion | undefined;
    let json: string;
    switch (verb) {
      case "enable": {
        const res = await conn.secrets.enableSecretVersion(req);
        version = res.version;
        json = jsonText(EnableSecretVersionResponseSchema, res);
        break;
      }
      case "disable": {
        const res = await conn.secrets.disableSecretVersion(req);
        version = res.version;
        json = jsonText(DisableSecretVersionResponseSchema, res);
        break;
      }
      case "delete": {
        const res = await conn.secrets.deleteSecretVersion(req);
        version = res.version;
        json = jsonText(DeleteSecretVersionResponseSchema, res);
        break;
      }
      case "restore": {
        const res = await conn.secrets.restoreSecretVersion(req);
        version = res.version;
        json = jsonText(RestoreSecretVersionResponseSchema, res);
        break;
      }
      case "destroy": {
        const res = await conn.secrets.destroySecretVersion(req);
        version = res.version;
        json = jsonText(DestroySecretVersionResponseSchema, res);
        break;
      }
    }
    if (format === "json") return write(ctx, json);
    const shown = version?.revision ?? revision;
    const status = version ? ` (now ${enumName(VersionStatusSchema, version.status)})` : "";
    return write(
      ctx,
      verb === "delete"
        ? `Scheduled version ${shown} of ${ref.text} for deletion; undo with: coffer version restore ${ref.text} ${shown}\n`
        : verb === "destroy"
          ? `Destroyed version ${shown} of ${ref.text}: its payload is gone for good.\n`
          : `${DONE[verb]} version ${shown} of ${ref.text}${verb === "restore" ? status : ""}.\n`,
    );
  };
}

async function write(ctx: Context, text: string): Promise<undefined> {
  await ctx.io.stdout.write(text);
  return undefined;
}

/** What the commands of `coffer version` (version.ts) do. */
export const run: Runs<typeof VERSION> = {
  async create(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const generated = parseGenerate(values);
    checkShowGenerated(values, format);
    const read =
      generated !== undefined
        ? undefined
        : ((await readPayload(ctx, values, { required: true })) as Uint8Array);
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const getType = async () =>
      (await conn.secrets.getSecret({ region: conn.settings.region, secretId })).secret?.type;
    let data: Uint8Array;
    if (generated !== undefined) {
      // Checked before anything is created: a random value fits opaque secrets only.
      checkGeneratedType(enumName(SecretTypeSchema, (await getType()) ?? 0));
      data = generatePayload(generated);
    } else {
      const payload = read as Uint8Array;
      // The secret's type decides the shape (an ssh_key from a raw key file).
      const type = mayNeedShaping(payload) ? await getType() : undefined;
      data = type === undefined ? payload : shapePayload(type, payload);
    }
    const res = await conn.secrets
      .createSecretVersion({
        region: conn.settings.region,
        secretId,
        data,
        dataCrc32: crc32(data),
        description: values.description ?? "",
        ...(values.disabled && { enabled: false }),
        disablePrevious: values["disable-previous"] ?? false,
        etag: values.etag ?? "",
      })
      .catch(
        inFlagTerms({
          data: generated !== undefined ? "--generate" : payloadSource(values),
          description: "--description",
          etag: "--etag",
        }),
      );
    if (generated !== undefined && !values["show-generated"]) {
      await ctx.io.stderr.write(generatedNote(generated));
    }
    if (format === "json") return write(ctx, jsonText(CreateSecretVersionResponseSchema, res));
    const v = res.version;
    const done = `Created version ${v?.revision ?? "?"} of ${ref.text} (${enumName(VersionStatusSchema, v?.status ?? 0)}).\n`;
    if (generated !== undefined && values["show-generated"]) {
      // The value alone on stdout, for VALUE=$(coffer version create ...).
      await ctx.io.stderr.write(done);
      await ctx.io.stdout.write(data);
      return write(ctx, "\n");
    }
    return write(ctx, done);
  },

  async get(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const revision = parseRevision(args[1] ?? "latest");
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const res = await conn.secrets.getSecretVersion({
      region: conn.settings.region,
      secretId,
      revision,
    });
    if (format === "json") return write(ctx, jsonText(GetSecretVersionResponseSchema, res));
    return write(ctx, res.version ? versionDetails(ref, res.version) : "");
  },

  async list(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const status = (values.status ?? [])
      .flatMap((s) => s.split(","))
      .map((s) => parseEnum<VersionStatus>(VersionStatusSchema, s, "--status"));
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.secrets.listSecretVersions({
        region: conn.settings.region,
        secretId,
        status,
        page,
        pageSize,
        pageToken,
      });
      return { items: res.versions, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListSecretVersionsResponseSchema,
          create(ListSecretVersionsResponseSchema, {
            versions: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["REVISION", "STATUS", "LATEST", "CREATED", "EPHEMERAL", "DESCRIPTION"],
      row: (v) => [
        String(v.revision),
        enumName(VersionStatusSchema, v.status),
        v.latest ? "yes" : "",
        formatTime(v.createdAt),
        propertiesText(v.ephemeralProperties),
        v.description,
      ],
      noun: "versions",
    });
  },

  async update(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const revision = parseRevision(args[1] as string);
    const format = parseOutputFormat(values.output);
    if (values["expires-at"] !== undefined && values["expires-in"] !== undefined) {
      throw new UsageError("give --expires-at or --expires-in, not both");
    }
    const expiresAt =
      values["expires-at"] !== undefined
        ? parseTime(values["expires-at"], "--expires-at")
        : values["expires-in"] !== undefined
          ? new Date(Date.now() + parseDuration(values["expires-in"], "--expires-in"))
          : undefined;
    const action =
      values["expiry-action"] === undefined
        ? undefined
        : parseEnum<EphemeralAction>(
            EphemeralActionSchema,
            values["expiry-action"],
            "--expiry-action",
          );
    const touchesProperties =
      expiresAt !== undefined || values["single-access"] || action !== undefined;
    if (values.description === undefined && !touchesProperties) {
      throw new UsageError(
        "nothing to update: give --description, --expires-at, --expires-in, --single-access or --expiry-action",
      );
    }
    const conn = await connect(ctx, values);
    const region = conn.settings.region;
    const secretId = await resolveSecretId(conn, ref);
    let properties: EphemeralProperties | undefined;
    if (touchesProperties) {
      // The request replaces the properties: start from the current ones.
      const current = (await conn.secrets.getSecretVersion({ region, secretId, revision })).version;
      properties = create(EphemeralPropertiesSchema, current?.ephemeralProperties ?? {});
      if (expiresAt !== undefined) properties.expiresAt = timestampFromDate(expiresAt);
      if (values["single-access"]) properties.expiresOnceAccessed = true;
      if (action !== undefined) properties.action = action;
    }
    const res = await conn.secrets
      .updateSecretVersion({
        region,
        secretId,
        revision,
        ...(values.description !== undefined && { description: values.description }),
        ...(properties !== undefined && { ephemeralProperties: properties }),
        etag: values.etag ?? "",
      })
      .catch(
        inFlagTerms({
          description: "--description",
          "ephemeral_properties.expires_at":
            values["expires-at"] !== undefined ? "--expires-at" : "--expires-in",
          "ephemeral_properties.action": "--expiry-action",
          etag: "--etag",
        }),
      );
    if (format === "json") return write(ctx, jsonText(UpdateSecretVersionResponseSchema, res));
    return write(ctx, res.version ? versionDetails(ref, res.version) : "");
  },

  async access(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const revision = parseRevision(args[1] ?? "latest_enabled");
    const format = parseOutputFormat(values.output);
    if (values.raw && format === "json")
      throw new UsageError("--raw and -o json cannot be combined");
    const conn = await connect(ctx, values);
    const region = conn.settings.region;
    let data: Uint8Array;
    let json: string;
    let expectedCrc: number;
    if (ref.kind === "path") {
      const projectId = await requireProject(conn);
      const res = await conn.secrets.accessSecretVersionByPath({
        region,
        projectId,
        path: ref.path,
        name: ref.name,
        revision,
      });
      data = res.data;
      expectedCrc = res.dataCrc32;
      json = format === "json" ? jsonText(AccessSecretVersionByPathResponseSchema, res) : "";
    } else {
      const res = await conn.secrets.accessSecretVersion({ region, secretId: ref.id, revision });
      data = res.data;
      expectedCrc = res.dataCrc32;
      json = format === "json" ? jsonText(AccessSecretVersionResponseSchema, res) : "";
    }
    if (crc32(data) !== expectedCrc) {
      throw new CliError(
        "the payload does not match the CRC-32 the server sent: it was corrupted on the way; nothing printed",
        ExitCode.Failure,
      );
    }
    if (values.field !== undefined) {
      const value = fieldOf(data, values.field);
      if (format === "json") return write(ctx, `${JSON.stringify(value)}\n`);
      const text = typeof value === "string" ? value : JSON.stringify(value);
      return write(ctx, values.raw || text.endsWith("\n") ? text : `${text}\n`);
    }
    if (format === "json") return write(ctx, json);
    if (values.raw) {
      await ctx.io.stdout.write(data);
      return undefined;
    }
    if (ctx.io.stdout.isTTY && !isUtf8Text(data)) {
      throw new CliError(
        "the payload is binary: printing it would garble the terminal",
        ExitCode.Failure,
        "use --raw and redirect it to a file (--raw > file), or -o json for base64",
      );
    }
    await ctx.io.stdout.write(data);
    if (data.length === 0 || data[data.length - 1] !== 0x0a) await ctx.io.stdout.write("\n");
    return undefined;
  },

  enable: stateCommand("enable"),
  disable: stateCommand("disable"),
  delete: stateCommand("delete"),
  restore: stateCommand("restore"),
  destroy: stateCommand("destroy"),
};
