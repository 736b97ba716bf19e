import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import {
  CreateTrustedIssuerResponseSchema,
  DeleteTrustedIssuerResponseSchema,
  ListTrustedIssuersResponseSchema,
  type TrustedIssuer,
  UpdateTrustedIssuerResponseSchema,
} from "@coffer/api";
import type { Runs } from "../args.ts";
import { type Connection, connect } from "../connection.ts";
import { CliError, ExitCode, UsageError } from "../errors.ts";
import { formatDetails, formatTime, jsonText, parseOutputFormat } from "../output.ts";
import { isUuid } from "../refs.ts";
import { listPages, printListing } from "../resolve.ts";
import type { ISSUER } from "./issuer.ts";

/** Where an issuer's keys come from, as a table shows it. */
export function keysText(i: TrustedIssuer): string {
  switch (i.keys.case) {
    case "discovery":
      return "discovery";
    case "jwksUrl":
      return i.keys.value;
    case "staticJwks":
      return "static";
    default:
      return "";
  }
}

function issuerDetails(i: TrustedIssuer): string {
  return formatDetails([
    ["id", i.id],
    ["name", i.name],
    ["issuer url", i.issuerUrl],
    ["audiences", i.audiences.join(", ")],
    ["keys", keysText(i)],
    ["created", formatTime(i.createdAt)],
  ]);
}

/**
 * An issuer's id: as is when `text` is a UUID, else the id of the issuer
 * with that name or issuer URL.
 * @throws CliError (not found) when none has it.
 */
export async function issuerIdFor(conn: Connection, text: string): Promise<string> {
  if (isUuid(text)) return text.toLowerCase();
  let pageToken = "";
  do {
    const res = await conn.admin.listTrustedIssuers({ pageSize: 1000, pageToken });
    const found = res.issuers.find((i) => i.name === text || i.issuerUrl === text);
    if (found !== undefined) return found.id;
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  throw new CliError(
    `no trusted issuer named "${text}"`,
    ExitCode.NotFound,
    '"coffer issuer list" shows them; give one by its id, name or issuer URL',
  );
}

/** A static JWKS file's text, checked enough to spare a round trip (the server checks it all). */
async function readStaticJwks(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(
      `cannot read --static-jwks-file ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  try {
    const doc = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(doc.keys)) throw new Error("no keys");
  } catch {
    throw new UsageError(
      `--static-jwks-file ${file} is not a JWKS document: JSON with a "keys" list`,
      "in Kubernetes: kubectl get --raw /openid/v1/jwks > jwks.json",
    );
  }
  return text;
}

/**
 * The key source that --discovery, --jwks-url and --static-jwks-file name
 * (at most one), or undefined when none is given.
 */
async function keysFrom(values: {
  discovery?: boolean;
  "jwks-url"?: string;
  "static-jwks-file"?: string;
}): Promise<TrustedIssuer["keys"] | undefined> {
  const given = (["discovery", "jwks-url", "static-jwks-file"] as const).filter(
    (k) => values[k] !== undefined && values[k] !== false,
  );
  if (given.length > 1) {
    throw new UsageError(
      `give ${given.map((k) => `--${k}`).join(" or ")}, not ${given.length === 2 ? "both" : "all three"}`,
    );
  }
  if (values.discovery === true) return { case: "discovery", value: true };
  const jwksUrl = values["jwks-url"];
  if (jwksUrl !== undefined) return { case: "jwksUrl", value: jwksUrl };
  const file = values["static-jwks-file"];
  if (file !== undefined) return { case: "staticJwks", value: await readStaticJwks(file) };
  return undefined;
}

/** What the commands of `coffer issuer` (issuer.ts) do. */
export const run: Runs<typeof ISSUER> = {
  async create(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const name = values.name;
    const issuerUrl = values["issuer-url"];
    const audiences = values.audience ?? [];
    if (name === undefined) throw new UsageError("an issuer needs --name");
    if (issuerUrl === undefined) {
      throw new UsageError(
        'an issuer needs --issuer-url: the exact "iss" claim of its tokens',
        "e.g. https://token.actions.githubusercontent.com, or your cluster's service-account issuer (kubectl get --raw /.well-known/openid-configuration)",
      );
    }
    if (audiences.length === 0) {
      throw new UsageError(
        'an issuer needs at least one --audience: an "aud" value its tokens carry for Coffer',
      );
    }
    const keys = (await keysFrom(values)) ?? { case: "discovery", value: true };
    const conn = await connect(ctx, values);
    const res = await conn.admin.createTrustedIssuer({
      issuer: { name, issuerUrl, audiences, keys },
    });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(CreateTrustedIssuerResponseSchema, res));
      return undefined;
    }
    const i = res.issuer;
    await ctx.io.stdout.write(
      `Trusted issuer ${i?.name ?? name} (id ${i?.id ?? ""}).\n${i ? issuerDetails(i) : ""}`,
    );
    await ctx.io.stderr.write(
      `Next: "coffer binding create --issuer ${i?.name ?? name} ..." says which of its identities get which grants.\n`,
    );
    return undefined;
  },

  async list(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.admin.listTrustedIssuers({ page, pageSize, pageToken });
      return { items: res.issuers, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListTrustedIssuersResponseSchema,
          create(ListTrustedIssuersResponseSchema, {
            issuers: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["ID", "NAME", "ISSUER URL", "AUDIENCES", "KEYS", "CREATED"],
      row: (i) => [
        i.id,
        i.name,
        i.issuerUrl,
        i.audiences.join(","),
        keysText(i),
        formatTime(i.createdAt),
      ],
      noun: "trusted issuers",
    });
  },

  async update(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const keys = await keysFrom(values);
    const audiences = values.audience;
    if (values.name === undefined && audiences === undefined && keys === undefined) {
      throw new UsageError(
        "nothing to change: give --name, --audience, or one of --discovery, --jwks-url, --static-jwks-file",
      );
    }
    const conn = await connect(ctx, values);
    const id = await issuerIdFor(conn, args[0] as string);
    const res = await conn.admin.updateTrustedIssuer({
      issuerId: id,
      ...(values.name !== undefined && { name: values.name }),
      ...(audiences !== undefined && { audiences: { audiences } }),
      ...(keys !== undefined && { keys }),
    });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(UpdateTrustedIssuerResponseSchema, res));
      return undefined;
    }
    const i = res.issuer;
    await ctx.io.stdout.write(
      `Updated trusted issuer ${i?.name ?? id} (id ${id}).\n${i ? issuerDetails(i) : ""}`,
    );
    return undefined;
  },

  async delete(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const id = await issuerIdFor(conn, args[0] as string);
    const res = await conn.admin.deleteTrustedIssuer({ issuerId: id });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(DeleteTrustedIssuerResponseSchema, res));
      return undefined;
    }
    await ctx.io.stdout.write(
      `Deleted trusted issuer ${res.issuer?.name ?? id} (id ${id}): ${res.deletedBindings} binding(s) deleted, ${res.revokedTokens} token(s) revoked.\n`,
    );
    return undefined;
  },
};
