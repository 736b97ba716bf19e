import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AdminService, ListAuditEventsResponseSchema, SecretService } from "@coffer/api";
import { command, group } from "../args.ts";
import {
  CONNECTION_OPTIONS,
  connect,
  OUTPUT_OPTION,
  PROJECT_OPTION,
  requireProject,
} from "../connection.ts";
import { CONNECT_CODES, UsageError } from "../errors.ts";
import { formatTime, fullPath, jsonText, parseOutputFormat } from "../output.ts";
import { isUuid, parseSecretRef, parseTime } from "../refs.ts";
import { listPages, PAGE_OPTIONS, printListing, resolveSecretId } from "../resolve.ts";

const SERVICES = [SecretService, AdminService];

/**
 * A method filter as its full name: `AccessSecretVersion` becomes
 * `coffer.secretmanager.v1.SecretService/AccessSecretVersion`.
 * @throws UsageError for a method neither service has.
 */
export function fullMethodName(text: string): string {
  const bare = text.includes("/") ? text.slice(text.lastIndexOf("/") + 1) : text;
  for (const service of SERVICES) {
    const method = service.methods.find((m) => m.name.toLowerCase() === bare.toLowerCase());
    if (method !== undefined) return `${service.typeName}/${method.name}`;
  }
  throw new UsageError(
    `--method: no method "${text}" (e.g. AccessSecretVersion, CreateSecret, CreateToken)`,
  );
}

/** `not-found`, `not_found`, `NOT_FOUND` and `ok` as the outcome names events hold. */
export function outcomeName(text: string): string {
  const name = text.trim().toUpperCase().replaceAll("-", "_");
  const known = ["OK", ...Object.values(CONNECT_CODES).map((c) => c.name)];
  if (!known.includes(name)) {
    throw new UsageError(
      `--outcome must be a status code name such as ok, not_found or permission_denied (got "${text}")`,
    );
  }
  return name;
}

/** The short form of a full method name, for tables. */
function shortMethod(method: string): string {
  return method.slice(method.lastIndexOf("/") + 1);
}

const listCommand = command({
  name: "list",
  summary: "list audit events, newest first, with filters",
  description: `Every call to Coffer, allowed or denied, is an audit event. Events are
read from one region (--region; default the server's default region). The
current project (--project, COFFER_PROJECT or the profile) filters them,
unless --all-projects.`,
  options: {
    secret: {
      type: "string",
      value: "SECRET",
      help: "only events about this secret (/path/name or id)",
    },
    "token-id": { type: "string", value: "ID", help: "only calls made with this token id" },
    method: { type: "string", value: "METHOD", help: "only this method, e.g. AccessSecretVersion" },
    outcome: {
      type: "string",
      value: "CODE",
      help: "only this outcome, e.g. ok, not_found, permission_denied",
    },
    since: {
      type: "string",
      value: "TIME",
      help: "events from this time on: 2025-06-01T00:00:00Z, or 1h (ago)",
    },
    until: {
      type: "string",
      value: "TIME",
      help: "events before this time (same forms as --since)",
    },
    "all-projects": { type: "boolean", help: "ignore the current project" },
    ...PAGE_OPTIONS,
    ...PROJECT_OPTION,
    ...OUTPUT_OPTION,
    ...CONNECTION_OPTIONS,
  },
  examples: [
    "coffer audit list --secret /prod/db --method AccessSecretVersionByPath --since 24h",
    "coffer audit list --outcome permission_denied -o json",
  ],
  async run(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const secret = values.secret === undefined ? undefined : parseSecretRef(values.secret);
    const method = values.method === undefined ? undefined : fullMethodName(values.method);
    const outcome = values.outcome === undefined ? undefined : outcomeName(values.outcome);
    const since = values.since === undefined ? undefined : parseTime(values.since, "--since");
    const until = values.until === undefined ? undefined : parseTime(values.until, "--until");
    const tokenId = values["token-id"];
    if (tokenId !== undefined && !isUuid(tokenId)) {
      throw new UsageError(
        `--token-id must be a token's id, a UUID (got "${tokenId.startsWith("coffer_") ? "coffer_..." : tokenId}")`,
      );
    }
    const conn = await connect(ctx, values);
    const projectId =
      values["all-projects"] || (conn.settings.project === undefined && secret?.kind !== "path")
        ? ""
        : await requireProject(conn);
    const secretId = secret === undefined ? undefined : await resolveSecretId(conn, secret);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.admin.listAuditEvents({
        region: conn.settings.region,
        projectId,
        secretId: secretId ?? "",
        tokenId: tokenId ?? "",
        method: method ?? "",
        outcome: outcome ?? "",
        ...(since !== undefined && { startTime: timestampFromDate(since) }),
        ...(until !== undefined && { endTime: timestampFromDate(until) }),
        page,
        pageSize,
        pageToken,
      });
      return { items: res.events, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListAuditEventsResponseSchema,
          create(ListAuditEventsResponseSchema, {
            events: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["TIME", "METHOD", "OUTCOME", "SECRET", "REVISION", "TOKEN", "PEER", "REQUEST"],
      row: (e) => [
        formatTime(e.time),
        shortMethod(e.method),
        // Refusals before any handler are aggregated per minute: show how many calls.
        e.count > 1 ? `${e.outcome} x${e.count}` : e.outcome,
        e.secretName ? fullPath(e.secretPath, e.secretName) : e.secretId,
        e.revision === 0 ? "" : String(e.revision),
        e.tokenId || e.tokenPrefix,
        e.peer,
        e.requestId,
      ],
      noun: "audit events",
    });
  },
});

/** `coffer audit ...`. */
export const auditGroup = group({
  name: "audit",
  summary: "read the audit trail (needs an admin token)",
  children: [listCommand],
});
