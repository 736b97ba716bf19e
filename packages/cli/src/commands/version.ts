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
  type SecretVersion,
  UpdateSecretVersionResponseSchema,
  type VersionStatus,
  VersionStatusSchema,
} from "@coffer/api";
import { command, group, type OptionSet } from "../args.ts";
import {
  CONNECTION_OPTIONS,
  connect,
  OUTPUT_OPTION,
  PROJECT_OPTION,
  requireProject,
} from "../connection.ts";
import type { Context } from "../context.ts";
import { CliError, ExitCode, inFlagTerms, UsageError } from "../errors.ts";
import {
  enumChoices,
  enumName,
  formatDetails,
  formatTime,
  jsonText,
  parseEnum,
  parseOutputFormat,
} from "../output.ts";
import {
  DATA_OPTIONS,
  mayNeedShaping,
  PAYLOAD_SHAPES,
  payloadSource,
  readPayload,
  shapePayload,
} from "../payload.ts";
import {
  parseDuration,
  parseRevision,
  parseSecretRef,
  parseTime,
  type SecretRef,
} from "../refs.ts";
import { listPages, PAGE_OPTIONS, printListing, resolveSecretId } from "../resolve.ts";

const SECRET_ARG = {
  name: "SECRET",
  help: "the secret: /path/name (e.g. /prod/db) or its id",
};
const REVISION_ARG = {
  name: "REVISION",
  help: 'the version: its number, "latest" or "latest_enabled"',
};
const COMMON = { ...PROJECT_OPTION, ...OUTPUT_OPTION, ...CONNECTION_OPTIONS } as const;
const ETAG = {
  etag: {
    type: "string",
    value: "ETAG",
    help: "fail with exit code 5 (ABORTED) if the secret changed since this etag was read",
  },
} as const satisfies OptionSet;

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

const createCommand = command({
  name: "create",
  summary: "add a version to a secret",
  description: `The payload comes from --data, --from-file, or stdin when it is piped.
It must fit the secret's type. The new version is enabled unless --disabled;
--disable-previous disables the version that was the latest enabled one.

${PAYLOAD_SHAPES}`,
  args: [SECRET_ARG],
  options: {
    ...DATA_OPTIONS,
    description: { type: "string", value: "TEXT", help: "a description of the version" },
    disabled: { type: "boolean", help: "create it disabled" },
    "disable-previous": { type: "boolean", help: "disable the previous latest enabled version" },
    ...ETAG,
    ...COMMON,
  },
  examples: [
    "coffer version create /prod/db --from-file db.json --disable-previous",
    "vault-export | coffer version create /prod/api-key",
  ],
  async run(ctx, { values, args }) {
    const ref = parseSecretRef(args[0] as string);
    const format = parseOutputFormat(values.output);
    const read = (await readPayload(ctx, values, { required: true })) as Uint8Array;
    const conn = await connect(ctx, values);
    const secretId = await resolveSecretId(conn, ref);
    // The secret's type decides the shape (an ssh_key from a raw key file).
    const type = mayNeedShaping(read)
      ? (await conn.secrets.getSecret({ region: conn.settings.region, secretId })).secret?.type
      : undefined;
    const data = type === undefined ? read : shapePayload(type, read);
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
        inFlagTerms({ data: payloadSource(values), description: "--description", etag: "--etag" }),
      );
    if (format === "json") return write(ctx, jsonText(CreateSecretVersionResponseSchema, res));
    const v = res.version;
    return write(
      ctx,
      `Created version ${v?.revision ?? "?"} of ${ref.text} (${enumName(VersionStatusSchema, v?.status ?? 0)}).\n`,
    );
  },
});

const getCommand = command({
  name: "get",
  summary: "show a version's metadata (never its payload)",
  args: [
    SECRET_ARG,
    { ...REVISION_ARG, help: `${REVISION_ARG.help} (default latest)`, optional: true },
  ],
  options: COMMON,
  examples: ["coffer version get /prod/db", "coffer version get /prod/db 3 -o json"],
  async run(ctx, { values, args }) {
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
});

const listCommand = command({
  name: "list",
  summary: "list a secret's versions, newest first",
  args: [SECRET_ARG],
  options: {
    status: {
      type: "string",
      multiple: true,
      value: "STATUS",
      help: `only versions in this status: ${enumChoices(VersionStatusSchema).join(", ")} (default enabled and disabled)`,
    },
    ...PAGE_OPTIONS,
    ...COMMON,
  },
  examples: [
    "coffer version list /prod/db",
    "coffer version list /prod/db --status scheduled_for_deletion",
  ],
  async run(ctx, { values, args }) {
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
});

const updateCommand = command({
  name: "update",
  summary: "change a version's description or ephemeral properties",
  description: `Ephemeral properties can only be tightened: single access cannot be turned
off, an expiry cannot be removed or moved later, and the delete action cannot
become disable.`,
  args: [SECRET_ARG, REVISION_ARG],
  options: {
    description: { type: "string", value: "TEXT", help: "a new description" },
    "expires-at": {
      type: "string",
      value: "TIME",
      help: "ephemeral: expire at this time (1s to 365d ahead, not later than now set), e.g. 2030-01-01T00:00:00Z",
    },
    "expires-in": {
      type: "string",
      value: "DURATION",
      help: "ephemeral: expire this long from now (not later than now set)",
    },
    "single-access": { type: "boolean", help: "ephemeral: the first access consumes it" },
    "expiry-action": { type: "string", value: "ACTION", help: "ephemeral: disable or delete" },
    ...ETAG,
    ...COMMON,
  },
  examples: ["coffer version update /prod/db 3 --description 'rotated by ops'"],
  async run(ctx, { values, args }) {
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
});

const accessCommand = command({
  name: "access",
  summary: "print a version's payload",
  description: `Prints the payload of a version (by default the latest enabled one).
Without --raw, a newline is added when the payload does not end with one.
--raw prints exactly the payload's bytes, nothing added: use it for files
and binary payloads. --field NAME prints one field of a JSON payload
(strings as they are, other values as JSON).

The payload's CRC-32 is checked against the server's. Accessing a
single-access version consumes it: the next access fails (exit code 5).
A secret named by /path/name is read in one call (AccessSecretVersionByPath),
so a token with only the secret_access role can use it.`,
  args: [
    SECRET_ARG,
    { ...REVISION_ARG, help: `${REVISION_ARG.help} (default latest_enabled)`, optional: true },
  ],
  options: {
    raw: { type: "boolean", help: "print exactly the payload bytes, no newline added" },
    field: { type: "string", value: "NAME", help: "print one top-level field of a JSON payload" },
    ...COMMON,
  },
  examples: [
    "coffer version access /prod/db",
    "coffer version access /prod/db --field password --raw",
    "coffer version access /prod/tls-key 3 --raw > key.pem",
    "coffer version access /prod/db -o json | jq -r .data | base64 -d",
  ],
  async run(ctx, { values, args }) {
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
});

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

type StateVerb = "enable" | "disable" | "delete" | "restore" | "destroy";

const STATE_VERBS: Record<StateVerb, { summary: string; done: string; description?: string }> = {
  enable: {
    summary: "enable a version: it can be accessed again",
    done: "Enabled",
    description: "An ephemeral secret's version gets a new time to live.",
  },
  disable: {
    summary: "disable a version: its payload is kept but cannot be accessed",
    done: "Disabled",
  },
  delete: {
    summary: "schedule a version for deletion (restorable for the restore window)",
    done: "Scheduled for deletion:",
  },
  restore: {
    summary: "cancel a version's scheduled deletion; it comes back disabled",
    done: "Restored",
  },
  destroy: {
    summary: "destroy a version's payload now, for good (admins; audited)",
    done: "Destroyed",
    description: `Unlike "coffer version delete", which schedules the version for deletion
and lets it be restored until the restore window ends, this destroys its
payload at once: nothing can bring it back. For a payload that must be gone
now (a leaked credential). The version stays listed, destroyed (status
deleted), so its revision is never reused. Needs the admin role on the
project and --yes; the call is audited.`,
  },
};

function stateCommand(verb: StateVerb) {
  const { summary, done, description } = STATE_VERBS[verb];
  return command({
    name: verb,
    summary,
    ...(description !== undefined && { description }),
    args: [SECRET_ARG, REVISION_ARG],
    options: {
      ...ETAG,
      ...(verb === "destroy" && {
        yes: { type: "boolean", help: "yes, destroy it now: this cannot be undone" } as const,
      }),
      ...COMMON,
    },
    examples: [`coffer version ${verb} /prod/db 1${verb === "destroy" ? " --yes" : ""}`],
    async run(ctx, { values, args }) {
      const ref = parseSecretRef(args[0] as string);
      const revision = parseRevision(args[1] as string);
      const format = parseOutputFormat(values.output);
      if (verb === "destroy" && !(values as { yes?: boolean }).yes) {
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
            : `${done} version ${shown} of ${ref.text}${verb === "restore" ? status : ""}.\n`,
      );
    },
  });
}

async function write(ctx: Context, text: string): Promise<undefined> {
  await ctx.io.stdout.write(text);
  return undefined;
}

/** `coffer version ...`. */
export const versionGroup = group({
  name: "version",
  summary:
    "add, read, enable, disable, delete (schedule for deletion) and destroy a secret's versions",
  description: `Each secret holds numbered versions (1, 2, 3...) of its payload. Commands
take the secret as /path/name or by id, then a revision: a number, "latest"
(the highest) or "latest_enabled" (the highest enabled one).`,
  children: [
    createCommand,
    getCommand,
    listCommand,
    updateCommand,
    accessCommand,
    stateCommand("enable"),
    stateCommand("disable"),
    stateCommand("delete"),
    stateCommand("restore"),
    stateCommand("destroy"),
  ],
});
