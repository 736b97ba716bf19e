import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  AuthService,
  ListAuditEventsResponseSchema,
  SecretService,
} from "@coffer/api";
import type { Runs } from "../args.ts";
import { connect, requireProject } from "../connection.ts";
import { UsageError } from "../errors.ts";
import { formatTime, fullPath, jsonText, parseOutputFormat } from "../output.ts";
import { isUuid, parseSecretRef, parseTime } from "../refs.ts";
import { listPages, printListing, resolveSecretId } from "../resolve.ts";
import { CONNECT_CODES } from "../rpc-errors.ts";
import type { AUDIT } from "./audit.ts";

const SERVICES = [SecretService, AdminService, AuthService];

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

/** What the commands of `coffer audit` (audit.ts) do. */
export const run: Runs<typeof AUDIT> = {
  async list(ctx, { values }) {
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
    // Exchanges (ExchangeToken) say who signed in, and why one was refused:
    // columns shown only when a listed event has them.
    const exchanges = listing.items.some((e) => e.subject !== "" || e.reason !== "");
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
      columns: [
        "TIME",
        "METHOD",
        "OUTCOME",
        "SECRET",
        "REVISION",
        "TOKEN",
        "PEER",
        "REQUEST",
        ...(exchanges ? ["SUBJECT", "REASON"] : []),
      ],
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
        ...(exchanges ? [e.subject, e.reason] : []),
      ],
      noun: "audit events",
    });
  },
};
