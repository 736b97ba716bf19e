import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** tsx's loader as a file URL, for `node --import` (resolved here, not from the child's cwd). */
export const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** How a process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Process groups still alive. Every child is spawned detached (a group of
 * its own), so a SIGKILL to the group also reaches anything it started.
 */
const liveGroups = new Set<number>();
process.once("exit", () => {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** A child node process whose output goes to a log file, with the last lines kept for errors. */
export class Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<Exit>;
  readonly #tail: string[] = [];
  readonly #listeners = new Set<(line: string) => void>();
  #exit: Exit | undefined;

  constructor(
    readonly name: string,
    args: string[],
    options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string; ipc?: boolean },
  ) {
    this.proc = spawn(process.execPath, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe", ...(options.ipc ? (["ipc"] as const) : [])],
    });
    if (this.proc.pid === undefined) throw new Error(`could not spawn ${name}`);
    this.pid = this.proc.pid;
    liveGroups.add(this.pid);
    const log = createWriteStream(options.logFile, { flags: "a" });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      if (stream === null) continue;
      stream.setEncoding("utf8");
      let partial = "";
      stream.on("data", (chunk: string) => {
        log.write(chunk);
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) this.#line(line);
      });
    }
    this.exited = new Promise((resolve) => {
      this.proc.once("close", (code, signal) => {
        liveGroups.delete(this.pid);
        this.#exit = { code, signal };
        log.end();
        resolve(this.#exit);
      });
    });
  }

  #line(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > 60) this.#tail.shift();
    for (const listener of this.#listeners) listener(line);
  }

  get exit(): Exit | undefined {
    return this.#exit;
  }

  /** The last lines of output, for error messages. */
  tail(): string {
    return this.#tail.join("\n");
  }

  /** Calls `listener` with every output line from now on. */
  onLine(listener: (line: string) => void): void {
    this.#listeners.add(listener);
  }

  /** Resolves with the first output line (from now on) that `match` accepts. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(new Error(`${this.name}: no matching output line within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (line: string) => {
        if (!match(line)) return;
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(line);
      };
      this.#listeners.add(listener);
    });
  }

  /** SIGTERM, then SIGKILL to the whole group after `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<Exit> {
    if (this.#exit !== undefined) return this.#exit;
    try {
      this.proc.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), timeoutMs);
    });
    if ((await Promise.race([this.exited, late])) === "late") this.kill();
    clearTimeout(timer);
    return this.exited;
  }

  /** SIGKILLs the process group now. */
  kill(): void {
    if (this.#exit !== undefined) return;
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** A TCP port free right now on 127.0.0.1 (the server is told to listen on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process, in bytes (VmRSS of /proc/<pid>/status). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (m?.[1] === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** CPU time (user + system) of a process so far, in clock ticks; 0 once it is gone. */
/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
export const CLK_TCK = 100;

export function cpuTicksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** CPU ticks of every process whose command is `postgres` (the server and its backends). */
export function postgresTicks(): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "postgres") continue;
    } catch {
      continue;
    }
    total += cpuTicksOf(Number(entry));
  }
  return total;
}

/** CPU ticks and command name of every process now, by pid. */
export function allProcessTicks(): Map<number, { comm: string; ticks: number }> {
  const out = new Map<number, { comm: string; ticks: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      out.set(Number(entry), { comm, ticks: cpuTicksOf(Number(entry)) });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Busy and total ticks of the whole machine (all cores), from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Established TCP connections whose local port is `port` (server side), from /proc/net/tcp. */
export function establishedOn(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(`:${hex}`) && cols[3] === "01") n += 1;
    }
  }
  return n;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
