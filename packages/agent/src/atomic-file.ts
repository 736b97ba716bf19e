import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readdir, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";

/** How {@link writeFileAtomic} creates a file. */
export interface WriteOptions {
  /** Permission bits of the file, applied exactly (whatever the umask). */
  mode: number;
  uid?: number;
  gid?: number;
}

const TMP_MARK = ".coffer-tmp-";

/**
 * Replaces `file` with `data` so that a reader sees either the old content or
 * the new, never a partial or empty file: a temporary file in the same
 * folder, created with the final mode and owner, is written and fsynced,
 * then renamed over `file`, then the folder is fsynced so that the rename
 * survives a crash. Missing folders are created.
 */
export async function writeFileAtomic(
  file: string,
  data: Uint8Array,
  options: WriteOptions,
): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}${TMP_MARK}${randomBytes(6).toString("hex")}`);
  // O_EXCL: never follow or reuse something another process put there.
  const create = () =>
    open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      options.mode,
    );
  // The folder is made only when missing: a mkdir before every write was a
  // tenth of a busy agent's CPU.
  const handle = await create().catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
    await mkdir(dir, { recursive: true, mode: 0o755 });
    return create();
  });
  let renamed = false;
  try {
    if (options.uid !== undefined || options.gid !== undefined) {
      await handle.chown(options.uid ?? -1, options.gid ?? -1);
    }
    // After chown, which clears setuid/setgid bits; and exactly, past the umask.
    await handle.chmod(options.mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    await rename(tmp, file);
    renamed = true;
  } finally {
    if (!renamed) {
      await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    }
  }
  await syncDir(dir);
}

/** Removes `file` (and makes the removal durable); false when it was not there. */
export async function removeFile(file: string): Promise<boolean> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  await syncDir(path.dirname(file));
  return true;
}

/** Whether `file` exists with the given mode and owner. */
export async function fileMatches(file: string, options: WriteOptions): Promise<boolean> {
  try {
    const info = await stat(file);
    return (
      info.isFile() &&
      (info.mode & 0o7777) === options.mode &&
      (options.uid === undefined || info.uid === options.uid) &&
      (options.gid === undefined || info.gid === options.gid)
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Whether `file` exists (as anything). */
export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/**
 * Removes temporary files that a crashed run of {@link writeFileAtomic} left
 * beside `file`. Returns how many it removed.
 */
export async function removeStaleTemporaries(file: string): Promise<number> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}${TMP_MARK}`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (name.startsWith(prefix) && /^[0-9a-f]{12}$/.test(name.slice(prefix.length))) {
      await unlink(path.join(dir, name)).catch(() => {});
      removed += 1;
    }
  }
  return removed;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
