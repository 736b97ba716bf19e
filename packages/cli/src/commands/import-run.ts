import { basename } from "node:path";
import { crc32 } from "node:zlib";
import { Role, type Secret } from "@coffer/api";
import {
  type ExistingSecret,
  formatOfName,
  guessFormat,
  ImportFileError,
  kindOfSecretType,
  MAX_IMPORT_FILE_BYTES,
  parseImportFile,
  planImport,
  secretTypeOf,
  type ValueKind,
} from "@coffer/console/import";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Run } from "../args.ts";
import { type Connection, connect, requireProject } from "../connection.ts";
import type { Context } from "../context.ts";
import { CliError, ExitCode, UsageError } from "../errors.ts";
import { secretsInFolder } from "../folder-secrets.ts";
import { parseOutputFormat } from "../output.ts";
import { readFromFile } from "../payload.ts";
import { parseFolder } from "../refs.ts";
import { CONNECT_CODES } from "../rpc-errors.ts";
import { formatName, parseFileFormat } from "./file-format.ts";
import {
  type Comparison,
  type ImportRow,
  importJson,
  importRows,
  importTable,
  type RowResult,
  rowsToApply,
  sameValue,
  summary,
} from "./import-plan.ts";
import type { TRANSFER } from "./transfer.ts";

/** Reads FILE ("-": stdin) as UTF-8 text of at most 1 MiB. */
async function readImportFile(ctx: Context, file: string): Promise<string> {
  const tooLarge = () =>
    new UsageError(
      `FILE is larger than an import file may be (1 MiB, ${MAX_IMPORT_FILE_BYTES} bytes)`,
    );
  let bytes: Uint8Array;
  if (file === "-") {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.io.stdin) {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
      size += buf.length;
      if (size > MAX_IMPORT_FILE_BYTES) throw tooLarge();
      chunks.push(buf);
    }
    bytes = Buffer.concat(chunks);
  } else {
    bytes = await readFromFile(file, "FILE");
    if (bytes.byteLength > MAX_IMPORT_FILE_BYTES) throw tooLarge();
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError("FILE is not UTF-8 text; import a .env, JSON or YAML file");
  }
}

const READS_PAYLOADS = new Set<Role>([Role.ADMIN, Role.FULL_ACCESS, Role.SECRET_ACCESS]);

/**
 * Whether the calling token's grants let it read payloads in `folder` of
 * the project (the server's rule: a grant on the project, or a global
 * admin's, whose path prefix is the folder or above it). Asked so that an
 * import with a token that may not read payloads makes no refused reads.
 */
export function mayReadPayloads(
  grants: readonly { projectId: string; role: Role; pathPrefix: string }[],
  projectId: string,
  folder: string,
): boolean {
  return grants.some((g) => {
    const onProject = g.projectId === projectId || (g.projectId === "" && g.role === Role.ADMIN);
    const prefix = g.pathPrefix === "" ? "/" : g.pathPrefix;
    const under = prefix === "/" || folder === prefix || folder.startsWith(`${prefix}/`);
    return onProject && under && READS_PAYLOADS.has(g.role);
  });
}

/**
 * Reads the newest enabled value of each existing secret the plan names and
 * compares it with the file's. Single-access secrets are not read (it would
 * consume them). A secret without an enabled version, or a read the server
 * refuses, is "not compared"; any other error ends the command.
 */
async function compareExisting(
  conn: Connection,
  rows: ReturnType<typeof planImport>,
  secrets: ReadonlyMap<string, Secret>,
): Promise<Map<string, Comparison>> {
  const out = new Map<string, Comparison>();
  for (const row of rows) {
    if (row.refused !== undefined || row.existing === undefined || !row.bytes || !row.kind) {
      continue;
    }
    const secret = secrets.get(row.name);
    if (secret?.ephemeralPolicy?.expiresOnceAccessed) {
      out.set(row.name, { kind: "not_compared", why: "single-access: not read" });
      continue;
    }
    try {
      const res = await conn.secrets.accessSecretVersion({
        region: conn.settings.region,
        secretId: row.existing.id,
        revision: "latest_enabled",
      });
      const equal = sameValue(row.kind, row.bytes, row.existing.kind, res.data);
      res.data.fill(0);
      out.set(row.name, { kind: equal ? "equal" : "different" });
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      const why =
        err.code === Code.NotFound || err.code === Code.FailedPrecondition
          ? "no enabled version to compare"
          : err.code === Code.PermissionDenied
            ? "the token may not read it"
            : undefined;
      if (why === undefined) throw err;
      out.set(row.name, { kind: "not_compared", why });
    }
  }
  return out;
}

/** Asks on stderr, reads one line of stdin: true for y or yes. */
async function confirm(ctx: Context, question: string): Promise<boolean> {
  await ctx.io.stderr.write(`${question} [y/N] `);
  let answer = "";
  for await (const chunk of ctx.io.stdin) {
    answer += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
    if (answer.includes("\n")) break;
  }
  return /^\s*y(es)?\s*$/i.test(answer.split("\n")[0] ?? "");
}

/** Writes one row: a secret with its first version in one call, or a new version. */
async function applyRow(
  conn: Connection,
  projectId: string,
  folder: string,
  row: ImportRow,
): Promise<RowResult> {
  const data = row.bytes as Uint8Array;
  try {
    if (row.action === "create") {
      const res = await conn.secrets.createSecret({
        region: conn.settings.region,
        projectId,
        path: folder,
        name: row.name,
        type: secretTypeOf(row.kind as ValueKind),
        firstVersion: { data, dataCrc32: crc32(data) },
      });
      return { outcome: "created", secretId: res.secret?.id ?? "" };
    }
    const res = await conn.secrets.createSecretVersion({
      region: conn.settings.region,
      secretId: row.secretId as string,
      data,
      dataCrc32: crc32(data),
    });
    return { outcome: "new_version", revision: res.version?.revision ?? 0 };
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    // The server's messages never hold a payload.
    return {
      outcome: "failed",
      error: `${err.rawMessage} (${CONNECT_CODES[err.code].name})`,
    };
  }
}

/** What `coffer import` (transfer.ts) does. */
export const run: Run<typeof TRANSFER.import> = async (ctx, { values, args }) => {
  const file = args[0] as string;
  const output = parseOutputFormat(values.output);
  if (values.path === undefined) {
    throw new UsageError("--path is required: the folder to import into, e.g. --path /prod");
  }
  const folder = parseFolder(values.path, "--path");
  const flagFormat = values.format === undefined ? undefined : parseFileFormat(values.format);
  const dryRun = values["dry-run"] ?? false;
  // Refused before anything is read or called: the answer would need stdin.
  if (!dryRun && !values.yes && (file === "-" || !ctx.io.stdin.isTTY)) {
    throw new UsageError(
      "give --yes to import without a prompt (or --dry-run to only see the plan)",
    );
  }
  const text = await readImportFile(ctx, file);
  const format =
    flagFormat ?? (file === "-" ? undefined : formatOfName(basename(file))) ?? guessFormat(text);
  let entries: Awaited<ReturnType<typeof parseImportFile>>;
  try {
    entries = await parseImportFile(text, format);
  } catch (err) {
    if (err instanceof ImportFileError) throw new CliError(err.message, ExitCode.Usage);
    throw err;
  }
  if (entries.length === 0) throw new CliError("FILE has no entries to import", ExitCode.Usage);

  const conn = await connect(ctx, values);
  const projectId = await requireProject(conn);
  const secrets = new Map((await secretsInFolder(conn, projectId, folder)).map((s) => [s.name, s]));
  const existing = new Map<string, ExistingSecret>(
    [...secrets].map(([name, s]) => [name, { id: s.id, kind: kindOfSecretType(s.type) }]),
  );
  const plan = planImport(entries, existing);
  let compared = new Map<string, Comparison>();
  const anyExisting = plan.some((r) => r.existing !== undefined && r.refused === undefined);
  if (anyExisting) {
    let why: string | undefined = values["no-compare"] ? "--no-compare: not read" : undefined;
    if (why === undefined) {
      const caller = await conn.admin.getCaller({});
      if (!mayReadPayloads(caller.token?.grants ?? [], projectId, folder)) {
        why = "the token may not read payloads: not compared";
      }
    }
    if (why === undefined) compared = await compareExisting(conn, plan, secrets);
    else {
      for (const r of plan) if (r.existing) compared.set(r.name, { kind: "not_compared", why });
    }
  }
  const rows = importRows(plan, compared, values["new-versions"] ?? false);
  const toApply = rowsToApply(rows);
  const context = { path: folder, format: formatName(format), dryRun };
  const header = `${entries.length} ${entries.length === 1 ? "entry" : "entries"} from ${file === "-" ? "stdin" : file} (${formatName(format)}) into ${folder}: ${summary(rows)}.\n`;

  if (dryRun || toApply.length === 0) {
    if (output === "json") await ctx.io.stdout.write(importJson(context, rows));
    else {
      await ctx.io.stdout.write(header + importTable(rows));
      await ctx.io.stdout.write(dryRun ? "Dry run: nothing was written.\n" : "Nothing to write.\n");
    }
    return undefined;
  }
  if (output === "table") {
    // Asked first, a person sees the plan; with --yes the result table says it all.
    await ctx.io.stdout.write(values.yes ? header : header + importTable(rows));
  }
  if (!values.yes) {
    const ok = await confirm(
      ctx,
      `Write ${toApply.length} ${toApply.length === 1 ? "secret" : "secrets"} to ${folder}?`,
    );
    if (!ok) throw new CliError("nothing was written", ExitCode.Failure);
  }
  const results = new Map<ImportRow, RowResult>();
  for (const row of toApply) {
    results.set(row, await applyRow(conn, projectId, folder, row));
    row.bytes?.fill(0);
  }
  const failed = [...results.values()].filter((r) => r.outcome === "failed").length;
  if (output === "json") await ctx.io.stdout.write(importJson(context, rows, results));
  else {
    await ctx.io.stdout.write(`${values.yes ? "" : "\n"}${importTable(rows, results)}`);
    await ctx.io.stdout.write(`${results.size - failed} written, ${failed} failed.\n`);
  }
  return failed > 0 ? ExitCode.Failure : undefined;
};
