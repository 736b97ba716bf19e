import { type ChildProcessByStdio, spawn } from "node:child_process";
import { constants } from "node:fs";
import { open, readFile } from "node:fs/promises";
import path from "node:path";
import type { Readable, Writable } from "node:stream";

/**
 * Another process holds the embedded database's folder. A startup error for
 * the operator (exit code 2, no stack): it names the folder and the holder.
 */
export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
}

/** An exclusive lock on an embedded database's folder, held until released. */
export interface DataDirLock {
  /** The lock file, beside the folder. */
  readonly file: string;
  /** Releases the lock (after the database is closed). */
  release(): Promise<void>;
  /**
   * Calls `onLost` if the lock goes away while held (its helper process was
   * killed), so that the holder stops writing before another process opens
   * the folder.
   */
  onLost(onLost: () => void): void;
}

/**
 * The helper that holds the lock: `flock -n` takes an exclusive flock(2) on
 * the lock file and runs `cat`, which echoes one byte to say the lock is
 * held, then waits on its stdin, a pipe from this process. The kernel drops
 * the lock when the helper exits, and the helper exits when the pipe closes:
 * when this process releases the lock, exits, or dies in any way (kill -9
 * included). Signals from a terminal (its own session) or a service manager
 * (TERM, INT, HUP, QUIT ignored, which exec keeps) do not end it while this
 * process still drains and writes.
 */
const HELPER = 'trap "" INT TERM HUP QUIT; exec flock -n "$1" cat';

/**
 * Takes an exclusive lock on `dataDir` (an embedded PGlite folder) through a
 * flock(2) on `<dataDir>.lock`, or throws {@link DataDirLockedError} at once,
 * naming the folder and the pid of the process that holds it.
 *
 * Why flock(2) rather than a pid file checked for liveness: the kernel
 * releases it whatever ends the holder, so a crash never leaves it stuck and
 * no stale-lock takeover can race; and it holds across containers sharing a
 * volume on one host, where a pid (and its start time) read from another pid
 * namespace means nothing. Node has no flock of its own, and the native
 * modules that add it ship opaque binaries per Node ABI; util-linux's
 * `flock` command is on every Linux system (busybox has one too).
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const folder = path.resolve(dataDir);
  const file = `${folder}.lock`;
  // Created here, not by flock, so that it is private; never truncated
  // before the lock is held, so that a refused opener can read the holder.
  const handle = await open(file, constants.O_RDWR | constants.O_CREAT, 0o600);
  await handle.close();
  const helper = spawn("/bin/sh", ["-c", HELPER, "coffer-data-dir-lock", file], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  const held = await acquired(helper);
  if (held !== true) {
    if (held.code === 1 && held.stderr === "") {
      const pid = await holderPid(file);
      throw new DataDirLockedError(
        `the embedded database folder ${folder} is in use by another process (pid ${pid ?? "unknown"}, per ${file}): stop it first; two processes writing one folder lose acknowledged writes`,
      );
    }
    throw new Error(
      held.code === 127
        ? `cannot lock the embedded database folder ${folder}: the flock command (util-linux) is not installed; install it, or use Postgres (COFFER_DATABASE_URL)`
        : `cannot lock the embedded database folder ${folder} with flock (exit ${held.code ?? held.signal}): ${held.stderr.trim()}`,
    );
  }
  await writeHolder(file, `${process.pid}\n`);
  // Neither the helper nor its pipes keep this process alive.
  const streams = [helper.stdin, helper.stdout, helper.stderr] as unknown as {
    ref?: () => void;
    unref?: () => void;
  }[];
  helper.unref();
  for (const stream of streams) stream.unref?.();

  let releasing = false;
  let holding = true;
  const lost = new Set<() => void>();
  const exited = new Promise<void>((resolve) => helper.once("exit", () => resolve()));
  void exited.then(() => {
    holding = false;
    if (!releasing) for (const callback of lost) callback();
  });
  return {
    file,
    onLost: (callback) => {
      lost.add(callback);
    },
    release: async () => {
      if (releasing) return exited;
      releasing = true;
      // Forget the pid while still holding the lock, then let go. A lock
      // already lost may be another process's now: its file is not ours.
      if (holding) await writeHolder(file, "").catch(() => {});
      // Waiting for the helper to exit must keep this process alive.
      helper.ref();
      for (const stream of streams) stream.ref?.();
      helper.stdin.end();
      await exited;
    },
  };
}

type Helper = ChildProcessByStdio<Writable, Readable, Readable>;

/** Resolves true once the helper holds the lock, or how it ended without. */
function acquired(
  helper: Helper,
): Promise<true | { code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    let stderr = "";
    helper.stderr.setEncoding("utf8");
    helper.stderr.on("data", (chunk: string) => {
      stderr += chunk;
    });
    const onData = () => {
      helper.stdout.off("data", onData);
      helper.off("close", onClose);
      helper.off("error", reject);
      resolve(true);
    };
    const onClose = (code: number | null, signal: string | null) =>
      resolve({ code, signal, stderr });
    helper.stdout.on("data", onData);
    helper.once("close", onClose);
    helper.once("error", reject);
    // A helper refused the lock exits at once: writing to it then fails
    // with EPIPE, and "close" says what happened.
    helper.stdin.on("error", () => {});
    // `cat` echoes it only once flock holds the lock and has started it.
    helper.stdin.write("L");
  });
}

async function holderPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, "utf8").catch(() => "");
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

async function writeHolder(file: string, text: string): Promise<void> {
  const handle = await open(file, constants.O_WRONLY);
  try {
    await handle.truncate(0);
    await handle.write(text, 0);
  } finally {
    await handle.close();
  }
}
