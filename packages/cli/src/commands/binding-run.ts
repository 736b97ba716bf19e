import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import {
  type ClaimCondition,
  CreateIdentityBindingResponseSchema,
  DeleteIdentityBindingResponseSchema,
  type IdentityBinding,
  ListIdentityBindingsResponseSchema,
} from "@coffer/api";
import type { Runs } from "../args.ts";
import { connect, requireProject } from "../connection.ts";
import { UsageError } from "../errors.ts";
import { formatDetails, formatTime, jsonText, parseOutputFormat } from "../output.ts";
import { isUuid, parseDuration } from "../refs.ts";
import { listPages, printListing } from "../resolve.ts";
import type { BINDING } from "./binding.ts";
import { issuerIdFor } from "./issuer-run.ts";
import { grantText, parseGrant, resolveGrants } from "./token-run.ts";

/**
 * Parses `--claim KEY=VALUE` (or `--claim-glob KEY=PATTERN`): the key is
 * what comes before the first "=" (claim names and JSON Pointers such as
 * "/kubernetes.io/namespace" have none), the value everything after it,
 * "=" included.
 * @throws UsageError naming the flag and the form.
 */
export function parseClaim(text: string, glob: boolean): ClaimCondition {
  const flag = glob ? "--claim-glob" : "--claim";
  const eq = text.indexOf("=");
  const claim = eq === -1 ? "" : text.slice(0, eq);
  if (eq === -1 || claim === "") {
    throw new UsageError(
      `bad ${flag} "${text}": write ${glob ? "KEY=PATTERN" : "KEY=VALUE"}, e.g. ${glob ? "ref=refs/tags/v*" : "/kubernetes.io/namespace=prod"}`,
    );
  }
  return {
    $typeName: "coffer.admin.v1.ClaimCondition",
    claim,
    value: text.slice(eq + 1),
    glob,
  };
}

/** A condition as written: `KEY=VALUE`, and ` (glob)` after a glob's pattern. */
export function conditionText(c: ClaimCondition): string {
  return `${c.claim}=${c.value}${c.glob ? " (glob)" : ""}`;
}

/** A binding's token life, as a duration flag takes it: `15m`, `1h`, `90s`. */
function ttlText(b: IdentityBinding): string {
  if (b.tokenTtl === undefined) return "15m";
  const s = Math.round(durationMs(b.tokenTtl) / 1000);
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

function bindingDetails(b: IdentityBinding): string {
  return formatDetails([
    ["id", b.id],
    ["name", b.name],
    ["issuer", b.issuerId],
    ["conditions", b.conditions.map(conditionText).join(", ")],
    ["grants", b.grants.map(grantText).join(", ")],
    ["token ttl", ttlText(b)],
    ["created", formatTime(b.createdAt)],
  ]);
}

/** What the commands of `coffer binding` (binding.ts) do. */
export const run: Runs<typeof BINDING> = {
  async create(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const name = values.name;
    if (name === undefined) throw new UsageError("a binding needs --name");
    if (values.issuer === undefined) {
      throw new UsageError(
        "a binding needs --issuer: the trusted issuer whose tokens it matches",
        '"coffer issuer list" shows them',
      );
    }
    const conditions = [
      ...(values.claim ?? []).map((c) => parseClaim(c, false)),
      ...(values["claim-glob"] ?? []).map((c) => parseClaim(c, true)),
    ];
    if (conditions.length === 0) {
      throw new UsageError(
        "a binding needs at least one --claim or --claim-glob: without a condition it would match every token of the issuer",
      );
    }
    const specs = (values.grant ?? []).map(parseGrant);
    if (specs.length === 0) throw new UsageError("a binding needs at least one --grant");
    const ttlMs = values.ttl === undefined ? undefined : parseDuration(values.ttl, "--ttl");
    if (ttlMs !== undefined && (ttlMs < 60_000 || ttlMs > 3_600_000)) {
      throw new UsageError(`--ttl must be from 1m to 1h (got "${values.ttl}")`);
    }
    const conn = await connect(ctx, values);
    const issuerId = await issuerIdFor(conn, values.issuer);
    const grants = await resolveGrants(conn, specs);
    const res = await conn.admin.createIdentityBinding({
      binding: {
        name,
        issuerId,
        conditions,
        grants,
        ...(ttlMs !== undefined && { tokenTtl: durationFromMs(ttlMs) }),
      },
    });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(CreateIdentityBindingResponseSchema, res));
      return undefined;
    }
    const b = res.binding;
    await ctx.io.stdout.write(
      `Created binding ${b?.name ?? name} (id ${b?.id ?? ""}).\n${b ? bindingDetails(b) : ""}`,
    );
    return undefined;
  },

  async list(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const projectId =
      values["all-projects"] || conn.settings.project === undefined
        ? ""
        : await requireProject(conn);
    const issuerId = values.issuer === undefined ? "" : await issuerIdFor(conn, values.issuer);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.admin.listIdentityBindings({
        issuerId,
        projectId,
        page,
        pageSize,
        pageToken,
      });
      return { items: res.bindings, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListIdentityBindingsResponseSchema,
          create(ListIdentityBindingsResponseSchema, {
            bindings: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["ID", "NAME", "ISSUER", "CONDITIONS", "GRANTS", "TTL", "CREATED"],
      row: (b) => [
        b.id,
        b.name,
        b.issuerId,
        b.conditions.map(conditionText).join(","),
        b.grants.map(grantText).join(","),
        ttlText(b),
        formatTime(b.createdAt),
      ],
      noun: "identity bindings",
    });
  },

  async delete(ctx, { values, args }) {
    const id = args[0] as string;
    if (!isUuid(id)) {
      throw new UsageError(
        `bad binding id "${id}": give its id, a UUID from "coffer binding list"`,
      );
    }
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const res = await conn.admin.deleteIdentityBinding({ bindingId: id });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(DeleteIdentityBindingResponseSchema, res));
      return undefined;
    }
    await ctx.io.stdout.write(
      `Deleted binding ${res.binding?.name ?? id} (id ${id}): ${res.revokedTokens} token(s) revoked.\n`,
    );
    return undefined;
  },
};
