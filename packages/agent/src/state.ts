import { readFile } from "node:fs/promises";
import * as z from "zod/mini";
import { writeFileAtomic } from "./atomic-file.ts";
import "./zod-english.ts";

/** What the agent last wrote to one destination. Never a payload. */
export interface FileRecord {
  secretId: string;
  revision: number;
  /** CRC-32 of the payload the file was rendered from, as the server reported it. */
  crc32: number;
  /** The format the file was rendered in ({@link formatKey}). */
  format: string;
  /** The payload came from a single-access version: the file outlives the version. */
  singleAccess: boolean;
}

/**
 * Single-access bookkeeping of one configured secret. `intent` is written
 * (durably) before the consuming access; `handled` after the file was
 * written, or after the version was found lost. A version at or below
 * `handled` is never accessed again.
 */
export interface SingleAccessRecord {
  secretId: string;
  intent?: number;
  handled?: number;
}

const fileRecord = z.object({
  secretId: z.string(),
  revision: z.number().check(z.int()),
  crc32: z.number().check(z.int()),
  format: z.string(),
  singleAccess: z.boolean(),
});

const stateSchema = z.object({
  version: z.literal(1),
  cursor: z.string(),
  files: z.record(z.string(), fileRecord),
  singleAccess: z.record(
    z.string(),
    z.object({
      secretId: z.string(),
      intent: z.optional(z.number().check(z.int())),
      handled: z.optional(z.number().check(z.int())),
    }),
  ),
});

type StateData = z.infer<typeof stateSchema>;

/** The state file could not be read; the agent refuses to start rather than guess. */
export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

/**
 * The agent's state file: the watch cursor, what was written where, and the
 * single-access records. Changes are made in memory; {@link save} makes them
 * durable (atomic replace, fsynced, mode 0600).
 */
export class StateStore {
  readonly file: string;
  #data: StateData;
  #pending: Promise<void> | undefined;
  #writing: Promise<void> | undefined;
  #saves = 0;
  readonly #durable: boolean;

  private constructor(file: string, data: StateData, durable = true) {
    this.file = file;
    this.#data = data;
    this.#durable = durable;
  }

  /** Reads the state file; a missing file is an empty state. */
  static async load(file: string): Promise<StateStore> {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        return new StateStore(file, { version: 1, cursor: "", files: {}, singleAccess: {} });
      }
      throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new StateFileError(
        `state file ${file} is not valid JSON; move it away to start afresh (single-access versions already consumed will then be reported as lost)`,
      );
    }
    const parsed = stateSchema.safeParse(json);
    if (!parsed.success) {
      throw new StateFileError(
        `state file ${file} is not an agent state file (${parsed.error.issues[0]?.message ?? "bad shape"})`,
      );
    }
    return new StateStore(file, parsed.data);
  }

  /** An empty state kept in memory only, for tests. */
  static memory(): StateStore {
    return new StateStore(
      "(memory)",
      { version: 1, cursor: "", files: {}, singleAccess: {} },
      false,
    );
  }

  get cursor(): string {
    return this.#data.cursor;
  }

  set cursor(value: string) {
    this.#data.cursor = value;
  }

  fileRecord(destination: string): FileRecord | undefined {
    return this.#data.files[destination];
  }

  setFile(destination: string, record: FileRecord | undefined): void {
    if (record === undefined) delete this.#data.files[destination];
    else this.#data.files[destination] = { ...record };
  }

  singleAccess(key: string): SingleAccessRecord | undefined {
    const r = this.#data.singleAccess[key];
    return r === undefined ? undefined : { ...r };
  }

  setSingleAccess(key: string, record: SingleAccessRecord | undefined): void {
    if (record === undefined) delete this.#data.singleAccess[key];
    else this.#data.singleAccess[key] = { ...record };
  }

  /** How many writes reached the disk (for tests). */
  get saves(): number {
    return this.#saves;
  }

  /** A copy of the whole state, as it would be written. */
  snapshot(): StateData {
    return structuredClone(this.#data);
  }

  /**
   * Writes the state durably. Resolves once a write that includes every
   * change made before this call is on disk; concurrent calls share writes.
   */
  save(): Promise<void> {
    if (this.#pending !== undefined) return this.#pending;
    const run = async () => {
      // One write at a time, so that an older snapshot never lands last. This
      // await always yields, so #pending is set before it is cleared below.
      await this.#writing?.catch(() => {});
      // From here on, changes go into the next write.
      this.#pending = undefined;
      const text = `${JSON.stringify(this.#data, null, 2)}\n`;
      const write = this.#durable
        ? writeFileAtomic(this.file, Buffer.from(text), { mode: 0o600 })
        : Promise.resolve();
      this.#writing = write;
      try {
        await write;
        this.#saves += 1;
      } finally {
        if (this.#writing === write) this.#writing = undefined;
      }
    };
    const pending = run();
    this.#pending = pending;
    return pending;
  }
}
