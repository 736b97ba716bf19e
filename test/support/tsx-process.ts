import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root (`/work/main` in CI). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Coffer's programs run as one node process with tsx's loader, not under the
 * tsx command line (what `npm start` runs): the tsx CLI is a second process
 * that relays SIGTERM and, when the child has not acknowledged the signal
 * over tsx's IPC channel within 30 ms, SIGKILLs it and exits with 143. A
 * server busy with calls misses that window, so graceful shutdown cannot be
 * tested through it; production should not run under the tsx CLI either.
 */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** How a process ended: an exit code, or the signal that killed it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One line the process wrote, in the order it was read. */
export interface OutputLine {
  stream: "stdout" | "stderr";
  text: string;
}

/** A JSON log line. */
export type LogLine = Record<string, unknown>;

export function describeExit(exit: Exit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/** Process groups still alive, killed if the test runner exits without cleaning up. */
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

/**
 * A TypeScript entry point of this repository run as a child process, in a
 * process group of its own (so that a SIGKILL also reaches anything it
 * started). Its stdout (JSON log lines) and stderr are kept line by line.
 */
export class TsxProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every line of stdout and stderr, in order of arrival per stream. */
  readonly output: OutputLine[] = [];
  /** Resolves when the process has exited and its output is complete (never rejects). */
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  readonly #lineListeners = new Set<(line: OutputLine) => void>();

  constructor(
    /** Names the process in failure messages. */
    readonly label: string,
    main: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    cwd: string,
  ) {
    this.child = spawn(process.execPath, ["--import", TSX_LOADER, main, ...args], {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (this.child.pid === undefined) throw new Error(`could not spawn ${label}`);
    this.pid = this.child.pid;
    liveGroups.add(this.pid);
    this.#collect("stdout");
    this.#collect("stderr");
    this.exited = new Promise((resolve) => {
      // "close" rather than "exit": it comes after stdout and stderr have
      // ended, so the output is complete when this resolves.
      this.child.once("close", (code, signal) => {
        liveGroups.delete(this.pid);
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  #collect(stream: "stdout" | "stderr"): void {
    const source = this.child[stream];
    if (source === null) return;
    source.setEncoding("utf8");
    let partial = "";
    const emit = (text: string) => {
      const line = { stream, text };
      this.output.push(line);
      for (const listener of this.#lineListeners) listener(line);
    };
    source.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const part of parts) emit(part);
    });
    source.on("end", () => {
      if (partial !== "") emit(partial);
      partial = "";
    });
  }

  /** Calls `listener` with every line from now on; returns a function that stops it. */
  protected onLine(listener: (line: OutputLine) => void): () => void {
    this.#lineListeners.add(listener);
    return () => this.#lineListeners.delete(listener);
  }

  /** The exit status, once the process has exited. */
  get exit(): Exit | undefined {
    return this.#exit;
  }

  /** stdout, as written. */
  get stdout(): string {
    return this.#text("stdout");
  }

  /** stderr, as written. */
  get stderr(): string {
    return this.#text("stderr");
  }

  #text(stream: "stdout" | "stderr"): string {
    return this.output
      .filter((l) => l.stream === stream)
      .map((l) => `${l.text}\n`)
      .join("");
  }

  /** The JSON log lines of stdout, parsed; lines that are not JSON are skipped. */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const line of this.output) {
      const log = parseLog(line);
      if (log !== undefined) out.push(log);
    }
    return out;
  }

  /**
   * Waits for a JSON log line matching `predicate` (one already written
   * counts) and returns it. Rejects with the process's output when
   * `timeoutMs` passes or the process exits first. A log line is written
   * before the response it describes is sent, but it comes through a
   * different pipe, so it may be read after the response.
   */
  waitForLog(predicate: (log: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const match = (line: OutputLine) => {
        const log = parseLog(line);
        return log !== undefined && predicate(log) ? log : undefined;
      };
      for (const line of this.output) {
        const found = match(line);
        if (found) {
          resolve(found);
          return;
        }
      }
      let waiting = true;
      const done = (err: Error | undefined, log?: LogLine) => {
        waiting = false;
        clearTimeout(timer);
        stop();
        if (err) reject(err);
        else if (log) resolve(log);
      };
      const stop = this.onLine((line) => {
        const found = match(line);
        if (found) done(undefined, found);
      });
      const timer = setTimeout(
        () => done(this.failure(`logged no matching line within ${timeoutMs} ms`)),
        timeoutMs,
      );
      void this.exited.then((exit) => {
        // Output is complete at "close": a last matching line was seen by now.
        if (waiting) {
          done(this.failure(`exited (${describeExit(exit)}) before logging a matching line`));
        }
      });
    });
  }

  /** Waits for the process to exit on its own; kills it and rejects past `timeoutMs`. */
  async waitForExit(timeoutMs = 30_000): Promise<Exit> {
    if ((await this.#exitWithin(timeoutMs)) === "timeout") {
      this.kill();
      await this.exited;
      throw this.failure(`was still running after ${timeoutMs} ms`);
    }
    return this.exited;
  }

  /** Sends a signal to the process. */
  signal(signal: NodeJS.Signals): void {
    if (this.#exit === undefined) this.child.kill(signal);
  }

  /**
   * SIGTERM, then waits up to `timeoutMs` for the process to exit; past
   * that, SIGKILLs its whole process group. Returns how it ended.
   */
  async stop(timeoutMs = 20_000): Promise<Exit> {
    if (this.#exit !== undefined) return this.#exit;
    this.signal("SIGTERM");
    if ((await this.#exitWithin(timeoutMs)) === "timeout") this.kill();
    return this.exited;
  }

  /** SIGKILLs the process group at once (kill -9). */
  kill(): void {
    if (this.#exit !== undefined) return;
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  async #exitWithin(timeoutMs: number): Promise<Exit | "timeout"> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    return result;
  }

  /** An error naming the process, with the tail of its output. */
  protected failure(what: string): Error {
    const tail = (text: string) => text.split("\n").slice(-40).join("\n");
    return new Error(
      `${this.label} (pid ${this.pid}) ${what}\n--- stderr ---\n${tail(this.stderr)}\n--- stdout ---\n${tail(this.stdout)}`,
    );
  }
}

function parseLog(line: OutputLine): LogLine | undefined {
  if (line.stream !== "stdout") return undefined;
  try {
    const value: unknown = JSON.parse(line.text);
    return typeof value === "object" && value !== null ? (value as LogLine) : undefined;
  } catch {
    return undefined;
  }
}
