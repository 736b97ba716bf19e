import { type ChildProcess, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";

/** What a {@link FileReader} saw, once stopped. */
export interface FileReads {
  /** How many times it read the file. */
  reads: number;
  /** The first few read errors (error codes such as ENOENT). */
  errors: string[];
  /** Every distinct content it read, in the order first seen. */
  contents: string[];
}

/**
 * A process that reads one file in a tight loop until told to stop, and
 * keeps every distinct content it saw: to prove that a file replaced many
 * times (by the agent) is never seen torn, empty or missing. It runs apart
 * from the test runner so that neither slows the other's event loop.
 */
export class FileReader {
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;
  readonly #stopFile: string;
  readonly #outFile: string;

  /** Starts reading `file`; `scratch` is a path prefix for its stop and result files. */
  constructor(file: string, scratch: string) {
    this.#stopFile = `${scratch}.stop`;
    this.#outFile = `${scratch}.json`;
    this.#child = spawn(process.execPath, ["-e", READER, file, this.#stopFile, this.#outFile], {
      stdio: "inherit",
    });
    this.#exited = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
  }

  /**
   * Tells the reader to stop, waits for it (SIGKILL past `timeoutMs`), and
   * returns what it saw.
   */
  async stop(timeoutMs = 10_000): Promise<FileReads> {
    await writeFile(this.#stopFile, "");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), timeoutMs);
    });
    const result = await Promise.race([this.#exited, late]);
    clearTimeout(timer);
    if (result === "late") {
      this.kill();
      throw new Error(`the file reader did not stop within ${timeoutMs} ms`);
    }
    return JSON.parse(await readFile(this.#outFile, "utf8")) as FileReads;
  }

  /** Kills the reader at once (for cleanup after a failure); harmless once it has stopped. */
  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill("SIGKILL");
    }
  }
}

const READER = `
const fs = require("node:fs");
const [file, stop, out] = process.argv.slice(1);
const contents = new Set();
const errors = [];
let reads = 0;
for (;;) {
  try {
    contents.add(fs.readFileSync(file, "utf8"));
  } catch (err) {
    if (errors.length < 10) errors.push(String(err.code || err));
  }
  reads++;
  if (reads % 200 === 0 && fs.existsSync(stop)) break;
}
fs.writeFileSync(out, JSON.stringify({ reads, errors, contents: [...contents] }));
`;
