import { constants, type FileHandle, lstat, open, unlink } from "node:fs/promises";
import { basename } from "node:path";
import { formatOfName, type ImportFormat, kindOfSecretType } from "@coffer/console/import";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Run } from "../args.ts";
import { connect, requireProject } from "../connection.ts";
import type { Context } from "../context.ts";
import { CliError, ExitCode, UsageError } from "../errors.ts";
import { secretsInFolder } from "../folder-secrets.ts";
import { fullPath } from "../output.ts";
import { parseFolder } from "../refs.ts";
import { type ExportedSecret, formatExport, unexportableNames } from "./export-format.ts";
import { formatName, parseFileFormat } from "./file-format.ts";
import type { TRANSFER } from "./transfer.ts";

/**
 * Opens --output-file for writing, created with mode 0600 by this call
 * (O_EXCL: never an existing file, never through a symbolic link). With
 * `force`, an existing file is removed first, so the secrets never land in
 * a file whose mode someone else chose. Opened before any payload is read,
 * so that a refused file costs no read (and consumes no single-access
 * version).
 */
export async function createPrivateFile(file: string, force: boolean): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  try {
    return await open(file, flags, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EEXIST") {
      throw new CliError(
        `cannot create --output-file ${file}: ${(err as Error).message}`,
        ExitCode.Failure,
      );
    }
    if (!force) {
      throw new CliError(
        `--output-file ${file} exists: it is not overwritten`,
        ExitCode.Conflict,
        "choose another file, or give --force to replace it (by a new file of mode 0600)",
      );
    }
    const existing = await lstat(file);
    if (existing.isDirectory()) {
      throw new CliError(`--output-file ${file} is a folder`, ExitCode.Failure);
    }
    await unlink(file);
    try {
      return await open(file, flags, 0o600);
    } catch (again) {
      throw new CliError(
        `cannot create --output-file ${file}: ${(again as Error).message}`,
        ExitCode.Failure,
      );
    }
  }
}

/** What `coffer export` (transfer.ts) does. */
export const run: Run<typeof TRANSFER.export> = async (ctx: Context, { values }) => {
  if (values.path === undefined) {
    throw new UsageError("--path is required: the folder to export, e.g. --path /prod");
  }
  const folder = parseFolder(values.path, "--path");
  const outFile = values["output-file"];
  if (values.force && outFile === undefined) {
    throw new UsageError("--force replaces --output-file: give one");
  }
  const byName = outFile === undefined ? undefined : formatOfName(basename(outFile));
  const format: ImportFormat | undefined =
    values.format !== undefined ? parseFileFormat(values.format) : byName;
  if (format === undefined) {
    throw new UsageError(
      "give --format dotenv, json or yaml" +
        (outFile === undefined ? "" : ` (the name ${outFile} does not tell it)`),
    );
  }

  const conn = await connect(ctx, values);
  const projectId = await requireProject(conn);
  const secrets = await secretsInFolder(conn, projectId, folder);
  if (secrets.length === 0) {
    await ctx.io.stderr.write(`coffer: note: no secrets directly in ${folder}\n`);
  }
  const singleAccess = secrets.filter((s) => s.ephemeralPolicy?.expiresOnceAccessed);
  if (singleAccess.length > 0 && !values["single-access"]) {
    throw new CliError(
      `refusing to export single-access secrets (reading one consumes it): ${singleAccess.map((s) => fullPath(s.path, s.name)).join(", ")}`,
      ExitCode.Conflict,
      "give --single-access to export them too, which consumes them",
    );
  }
  const badNames = unexportableNames(
    secrets.map((s) => s.name),
    format,
  );
  if (badNames.length > 0) {
    throw new CliError(
      `cannot export ${badNames.join(", ")} to .env: a .env key is letters, digits, "_", "." or "-", starting with a letter or "_"`,
      ExitCode.Failure,
      "export the folder as JSON or YAML instead",
    );
  }

  const handle =
    outFile === undefined ? undefined : await createPrivateFile(outFile, values.force ?? false);
  const read: ExportedSecret[] = [];
  let written = false;
  try {
    for (const s of secrets) {
      try {
        const res = await conn.secrets.accessSecretVersion({
          region: conn.settings.region,
          secretId: s.id,
          revision: "latest_enabled",
        });
        read.push({ name: s.name, kind: kindOfSecretType(s.type), data: res.data });
      } catch (err) {
        if (
          err instanceof ConnectError &&
          (err.code === Code.NotFound || err.code === Code.FailedPrecondition)
        ) {
          // Gone since the listing, or no enabled version: nothing to write for it.
          await ctx.io.stderr.write(
            `coffer: note: ${fullPath(s.path, s.name)} left out: ${err.rawMessage}\n`,
          );
          continue;
        }
        throw err;
      }
    }
    const text = formatExport(read, format);
    if (handle === undefined) {
      await ctx.io.stdout.write(text);
    } else {
      await handle.writeFile(text, "utf8");
      await handle.sync();
      written = true;
      await ctx.io.stderr.write(
        `Exported ${read.length} ${read.length === 1 ? "secret" : "secrets"} from ${folder} to ${outFile} (${formatName(format)}, mode 0600).\n`,
      );
    }
  } finally {
    for (const r of read) r.data.fill(0);
    await handle?.close();
    // A file this command created but could not fill is not left behind.
    if (handle !== undefined && !written && outFile !== undefined) {
      await unlink(outFile).catch(() => undefined);
    }
  }
  return undefined;
};
