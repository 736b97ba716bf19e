import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CreateTokenResponseSchema,
  type Grant,
  ListTokensResponseSchema,
  RevokeTokenResponseSchema,
  Role,
  RoleSchema,
  type Token,
  TokenFormat,
  TokenFormatSchema,
} from "@coffer/api";
import type { Runs } from "../args.ts";
import { type Connection, connect, requireProject } from "../connection.ts";
import { UsageError } from "../errors.ts";
import {
  enumChoices,
  enumName,
  formatDetails,
  formatTime,
  jsonText,
  parseEnum,
  parseOutputFormat,
} from "../output.ts";
import { isUuid, parseDuration, parseFolder, parseTime } from "../refs.ts";
import { listPages, printListing } from "../resolve.ts";
import type { TOKEN } from "./token.ts";

/** A grant as the user writes it: `ROLE[@PROJECT][:/path]`. */
export interface GrantSpec {
  role: Role;
  /** Undefined: the current project. */
  project: string | undefined;
  pathPrefix: string;
}

/**
 * Parses `--grant ROLE[@PROJECT][:/PATH]`, e.g. `secret_access`,
 * `read_only:/prod`, `full_access@demo:/prod/db`.
 * @throws UsageError naming the rule.
 */
export function parseGrant(text: string): GrantSpec {
  const colon = text.indexOf(":");
  const head = colon === -1 ? text : text.slice(0, colon);
  const path = colon === -1 ? "/" : text.slice(colon + 1);
  const at = head.indexOf("@");
  const roleText = at === -1 ? head : head.slice(0, at);
  const project = at === -1 ? undefined : head.slice(at + 1);
  if (project === "")
    throw new UsageError(`bad --grant "${text}": nothing after "@" (ROLE@PROJECT)`);
  let role: Role;
  try {
    role = parseEnum<Role>(RoleSchema, roleText, "--grant");
  } catch {
    throw new UsageError(
      `bad --grant "${text}": the role must be one of ${enumChoices(RoleSchema).join(", ")}; write ROLE, ROLE:/path or ROLE@PROJECT:/path`,
    );
  }
  return { role, project, pathPrefix: parseFolder(path, "--grant path") };
}

/** `read_only@<project>:/prod`, `admin@*` for a global admin. */
export function grantText(g: Grant): string {
  const where = g.projectId === "" ? "*" : g.projectId;
  const path = g.pathPrefix === "" || g.pathPrefix === "/" ? "" : `:${g.pathPrefix}`;
  return `${enumName(RoleSchema, g.role)}@${where}${path}`;
}

/**
 * The grants of `--grant` flags, their projects resolved: the current one
 * when none is named, a name looked up. Shared with `coffer binding create`.
 */
export async function resolveGrants(conn: Connection, specs: GrantSpec[]): Promise<Grant[]> {
  const grants: Grant[] = [];
  let current: string | undefined;
  for (const spec of specs) {
    let projectId: string;
    if (spec.project === undefined) {
      current ??= await requireProject(conn);
      projectId = current;
    } else if (isUuid(spec.project)) {
      projectId = spec.project.toLowerCase();
    } else {
      projectId = await requireProject({
        ...conn,
        settings: { ...conn.settings, project: spec.project },
      });
    }
    grants.push({
      $typeName: "coffer.admin.v1.Grant",
      projectId,
      role: spec.role,
      pathPrefix: spec.pathPrefix,
    });
  }
  return grants;
}

function tokenDetails(t: Token): string {
  return formatDetails([
    ["id", t.id],
    ["name", t.name],
    ["prefix", t.prefix],
    ["grants", t.grants.map(grantText).join(", ")],
    ["created", formatTime(t.createdAt)],
    ["expires", formatTime(t.expiresAt) || "never"],
    ["revoked", formatTime(t.revokedAt)],
  ]);
}

/** What the commands of `coffer token` (token.ts) do. */
export const run: Runs<typeof TOKEN> = {
  async create(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const tokenFormat =
      values.format === undefined
        ? TokenFormat.COFFER
        : parseEnum<TokenFormat>(TokenFormatSchema, values.format, "--format");
    const specs = (values.grant ?? []).map(parseGrant);
    if (specs.length === 0 && !values["global-admin"]) {
      throw new UsageError("a token needs at least one --grant (or --global-admin)");
    }
    if (values["expires-in"] !== undefined && values["expires-at"] !== undefined) {
      throw new UsageError("give --expires-in or --expires-at, not both");
    }
    const expiresAt =
      values["expires-at"] !== undefined
        ? parseTime(values["expires-at"], "--expires-at")
        : values["expires-in"] !== undefined
          ? new Date(Date.now() + parseDuration(values["expires-in"], "--expires-in"))
          : undefined;
    const conn = await connect(ctx, values);
    const grants = await resolveGrants(conn, specs);
    if (values["global-admin"]) {
      grants.push({
        $typeName: "coffer.admin.v1.Grant",
        projectId: "",
        role: Role.ADMIN,
        pathPrefix: "",
      });
    }
    const res = await conn.admin.createToken({
      name: args[0] as string,
      grants,
      ...(expiresAt !== undefined && { expiresAt: timestampFromDate(expiresAt) }),
      format: tokenFormat,
    });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(CreateTokenResponseSchema, res));
      return undefined;
    }
    const t = res.token;
    const what = `Created token ${t?.name ?? ""} (id ${t?.id ?? ""}): ${t?.grants.map(grantText).join(", ") ?? ""}${
      t?.expiresAt ? `, expires ${formatTime(t.expiresAt)}` : ""
    }.`;
    if (res.accessKey === "") {
      await ctx.io.stderr.write(`${what}\nIts value, shown this once (store it now):\n`);
      await ctx.io.stdout.write(`${res.value}\n`);
      return undefined;
    }
    await ctx.io.stderr.write(
      `${what}\nIts access key id and secret key, shown this once (store them now); Scaleway's SDKs take them as accessKey and secretKey (env SCW_ACCESS_KEY and SCW_SECRET_KEY):\n`,
    );
    await ctx.io.stdout.write(`SCW_ACCESS_KEY=${res.accessKey}\nSCW_SECRET_KEY=${res.value}\n`);
    return undefined;
  },

  async list(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const projectId =
      values["all-projects"] || conn.settings.project === undefined
        ? ""
        : await requireProject(conn);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.admin.listTokens({
        projectId,
        includeInactive: values.inactive ?? false,
        page,
        pageSize,
        pageToken,
      });
      return { items: res.tokens, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListTokensResponseSchema,
          create(ListTokensResponseSchema, {
            tokens: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["ID", "NAME", "PREFIX", "GRANTS", "CREATED", "EXPIRES", "REVOKED"],
      row: (t) => [
        t.id,
        t.name,
        t.prefix,
        t.grants.map(grantText).join(","),
        formatTime(t.createdAt),
        formatTime(t.expiresAt),
        formatTime(t.revokedAt),
      ],
      noun: "tokens",
    });
  },

  async revoke(ctx, { values, args }) {
    const id = args[0] as string;
    if (!isUuid(id)) {
      throw new UsageError(
        `bad token id "${id.startsWith("coffer_") ? "coffer_..." : id}": give the token's id (a UUID from "coffer token list"), not its value`,
      );
    }
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const res = await conn.admin.revokeToken({ tokenId: id });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(RevokeTokenResponseSchema, res));
      return undefined;
    }
    await ctx.io.stdout.write(
      res.token
        ? `Revoked token ${res.token.name} (id ${id}).\n${tokenDetails(res.token)}`
        : `Revoked token ${id}.\n`,
    );
    return undefined;
  },
};
