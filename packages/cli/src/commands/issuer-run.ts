import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import {
  CreateTrustedIssuerResponseSchema,
  DeleteTrustedIssuerResponseSchema,
  ListTrustedIssuersResponseSchema,
  type TrustedIssuer,
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
    const jwksUrl = values["jwks-url"];
    const staticFile = values["static-jwks-file"];
    if (jwksUrl !== undefined && staticFile !== undefined) {
      throw new UsageError("give --jwks-url or --static-jwks-file, not both");
    }
    let keys: TrustedIssuer["keys"] = { case: "discovery", value: true };
    if (jwksUrl !== undefined) keys = { case: "jwksUrl", value: jwksUrl };
    if (staticFile !== undefined) {
      let text: string;
      try {
        text = await readFile(staticFile, "utf8");
      } catch (err) {
        throw new UsageError(
          `cannot read --static-jwks-file ${staticFile} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
        );
      }
      try {
        const doc = JSON.parse(text) as { keys?: unknown };
        if (!Array.isArray(doc.keys)) throw new Error("no keys");
      } catch {
        throw new UsageError(
          `--static-jwks-file ${staticFile} is not a JWKS document: JSON with a "keys" list`,
          "in Kubernetes: kubectl get --raw /openid/v1/jwks > jwks.json",
        );
      }
      keys = { case: "staticJwks", value: text };
    }
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
