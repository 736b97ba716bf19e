import { crc32 } from "node:zlib";
import type { CofferClient } from "@coffer/client";
import { Backoff, sleep } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { fileMatches, removeFile, writeFileAtomic } from "./atomic-file.ts";
import type { RevisionTarget, SecretFileConfig, SecretRef } from "./config.ts";
import { formatKey, RenderError, render } from "./format.ts";
import type { Logger } from "./logger.ts";
import type { SingleAccessRecord, StateStore } from "./state.ts";

/** The calls the agent makes: payload access and the watch stream, nothing that reads metadata. */
export type AgentClient = Pick<
  CofferClient,
  "accessSecretVersion" | "accessSecretVersionByPath" | "watchSecrets"
>;

/**
 * One secret at one revision target, and the files rendered from it. Config
 * entries that name the same secret the same way with the same revision
 * share a unit: one access feeds all their files.
 */
export interface Unit {
  /** `/path/name@revision` or `id:<uuid>@revision`; the key of its single-access record. */
  key: string;
  ref: SecretRef;
  revision: RevisionTarget;
  files: SecretFileConfig[];
  /** The secret's id, once an access (or the state file) told it. */
  secretId?: string;
  /**
   * Set by SECRET_DELETED and SECRET_DESTROYED: the next reconcile that
   * finds the secret gone also removes files that hold a single-access
   * payload, which otherwise outlive their consumed version.
   */
  secretDeleted: boolean;
}

/** Groups config entries into units. */
export function buildUnits(files: SecretFileConfig[]): Unit[] {
  const units = new Map<string, Unit>();
  for (const file of files) {
    const key = `${refKey(file.ref)}@${file.revision}`;
    let unit = units.get(key);
    if (unit === undefined) {
      unit = { key, ref: file.ref, revision: file.revision, files: [], secretDeleted: false };
      units.set(key, unit);
    }
    unit.files.push(file);
  }
  return [...units.values()];
}

/** How a secret is named in logs: `/prod/db` or `id:<uuid>`. */
export function refKey(ref: SecretRef): string {
  if (ref.kind === "id") return `id:${ref.id}`;
  return ref.path === "/" ? `/${ref.name}` : `${ref.path}/${ref.name}`;
}

/**
 * What one reconcile did. `done` ends the work on this request (`failed`
 * too: the payload cannot be rendered, and trying again will not help until
 * something changes); `retry` asks for another attempt after a backoff.
 */
export type Outcome =
  | { kind: "done"; result: "written" | "unchanged" | "removed" | "absent" | "kept" | "lost" }
  | { kind: "failed"; reason: string }
  | { kind: "retry"; reason: string };

/** What a reconciler needs. */
export interface ReconcilerDeps {
  client: AgentClient;
  state: StateStore;
  logger: Logger;
  projectId: string;
  region: string;
  callTimeoutMs: number;
  /** Stops transport retries of a consuming access (the intent stays recorded). */
  signal: AbortSignal;
  /** Called with the destinations a reconcile wrote or removed. */
  onChanged?: (unit: Unit, destinations: string[]) => void;
  /** Backoff of transport retries of a consuming access. */
  backoff?: () => Backoff;
}

/** The Connect code of an error; Unknown for anything that is not a ConnectError. */
export function codeOf(err: unknown): Code {
  return err instanceof ConnectError ? err.code : ConnectError.from(err).code;
}

function describe(err: unknown): string {
  if (err instanceof ConnectError) return `${Code[err.code]}: ${err.rawMessage}`;
  if (err instanceof Error) return err.message;
  return "unknown error";
}

/**
 * Errors after which a consuming access may be sent again: the request may
 * not have reached the server, or its answer was lost. The server lets one
 * access win, so a retry after a lost answer gets FAILED_PRECONDITION.
 */
const TRANSIENT = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Canceled,
  Code.Unknown,
  Code.Aborted,
  Code.ResourceExhausted,
  Code.Internal,
]);

/** The answer of an access, whichever RPC gave it. */
interface Access {
  secretId: string;
  revision: number;
  data: Uint8Array;
  dataCrc32: number;
  singleAccess: boolean;
}

/**
 * Makes the files of a unit equal to its target revision. Level-triggered:
 * it asks the server what the target is now, whatever event led here.
 */
export class Reconciler {
  readonly #d: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
  }

  /** One reconcile of `unit`. Never throws. */
  async reconcile(unit: Unit): Promise<Outcome> {
    try {
      return await this.#reconcile(unit);
    } catch (err) {
      // File system errors (a full disk, a folder that is not writable): try again later.
      return { kind: "retry", reason: describe(err) };
    }
  }

  async #reconcile(unit: Unit): Promise<Outcome> {
    const pending = this.#d.state.singleAccess(unit.key);
    if (pending?.intent !== undefined && pending.intent > (pending.handled ?? 0)) {
      const resolved = await this.#resolveIntent(unit, pending, pending.intent);
      if (resolved.kind !== "done") return resolved;
    }

    let access: Access;
    try {
      access = await this.#access(unit, unitRevision(unit.revision), true);
    } catch (err) {
      const code = codeOf(err);
      if (code === Code.NotFound || code === Code.FailedPrecondition) {
        return this.#absent(unit, describe(err));
      }
      return { kind: "retry", reason: describe(err) };
    }
    unit.secretId = access.secretId;
    unit.secretDeleted = false;
    if (access.singleAccess) return this.#singleAccess(unit, access.secretId, access.revision);
    return this.#write(unit, access);
  }

  /**
   * A single-access version is the target: consume it if it is newer than
   * anything this agent handled for this secret, else keep the files.
   */
  async #singleAccess(unit: Unit, secretId: string, revision: number): Promise<Outcome> {
    let record = this.#d.state.singleAccess(unit.key);
    if (record !== undefined && record.secretId !== secretId) {
      // Another secret now answers for this entry (deleted and created
      // again): its revisions start over.
      record = undefined;
    }
    if (record?.handled !== undefined && revision <= record.handled) {
      return { kind: "done", result: "kept" };
    }
    return this.#consume(unit, { ...record, secretId }, revision);
  }

  /**
   * A run stopped between recording an intent and recording it handled.
   * Asks, without consuming, whether the version is still servable: if so
   * the consuming access never happened (or never won) and is made now;
   * if not, it was consumed and its payload is lost.
   */
  async #resolveIntent(unit: Unit, record: SingleAccessRecord, revision: number): Promise<Outcome> {
    try {
      await this.#d.client.accessSecretVersion(
        {
          region: this.#d.region,
          secretId: record.secretId,
          revision: String(revision),
          noConsume: true,
        },
        { timeoutMs: this.#d.callTimeoutMs },
      );
    } catch (err) {
      const code = codeOf(err);
      if (code === Code.NotFound || code === Code.FailedPrecondition) {
        return this.#lost(
          unit,
          record,
          revision,
          "an earlier run consumed it and stopped before writing it, or another reader consumed it",
        );
      }
      return { kind: "retry", reason: describe(err) };
    }
    return this.#consume(unit, record, revision);
  }

  /**
   * Consumes `revision`: records the intent durably, accesses it by number
   * (which consumes it), writes the files, records it handled.
   */
  async #consume(unit: Unit, record: SingleAccessRecord, revision: number): Promise<Outcome> {
    const { state, logger } = this.#d;
    const base: SingleAccessRecord = {
      secretId: record.secretId,
      ...(record.handled !== undefined && { handled: record.handled }),
    };
    state.setSingleAccess(unit.key, { ...base, intent: revision });
    // Nothing is consumed unless the intent is on disk.
    try {
      await state.save();
    } catch (err) {
      return {
        kind: "retry",
        reason: `cannot record the intent in the state file: ${describe(err)}`,
      };
    }
    const ids = { secret: refKey(unit.ref), secretId: record.secretId, revision };
    logger.info(ids, "consuming single-access version");

    let access: Access | undefined;
    const backoff = this.#d.backoff?.() ?? new Backoff();
    while (access === undefined) {
      try {
        access = await this.#access(
          { ...unit, ref: { kind: "id", id: record.secretId } },
          String(revision),
          false,
        );
      } catch (err) {
        const code = codeOf(err);
        if (code === Code.NotFound || code === Code.FailedPrecondition) {
          return this.#lost(
            unit,
            record,
            revision,
            "it was consumed before this agent's access won (a lost answer, or another reader)",
          );
        }
        if (!TRANSIENT.has(code) || this.#d.signal.aborted) {
          // The intent stays: the next reconcile (or the next start) resolves it.
          return { kind: "retry", reason: describe(err) };
        }
        const delayMs = backoff.next();
        logger.warn({ ...ids, code: Code[code], delayMs }, "consuming access failed; trying again");
        await sleep(delayMs, this.#d.signal);
      }
    }

    const data = access.data;
    try {
      if (crc32(data) !== access.dataCrc32) {
        return this.#lost(unit, record, revision, "its payload arrived with a wrong checksum");
      }
      const failures: string[] = [];
      const changed: string[] = [];
      for (const file of unit.files) {
        let bytes: Buffer;
        try {
          bytes = render(file.format, data);
        } catch (err) {
          if (!(err instanceof RenderError)) throw err;
          logger.error(
            { ...ids, destination: file.destination, reason: err.message },
            "cannot render the payload",
          );
          failures.push(err.message);
          continue;
        }
        try {
          await this.#writeWithRetries(file, bytes, ids);
        } finally {
          bytes.fill(0);
        }
        state.setFile(file.destination, {
          secretId: record.secretId,
          revision,
          crc32: access.dataCrc32,
          format: formatKey(file.format),
          singleAccess: true,
        });
        logger.info({ destination: file.destination, ...ids, singleAccess: true }, "file written");
        changed.push(file.destination);
      }
      state.setSingleAccess(unit.key, { ...base, handled: revision });
      await state.save().catch((err: unknown) => {
        logger.warn(
          { err: describe(err) },
          "cannot write the state file; will write it with the next change",
        );
      });
      logger.info({ ...ids, files: changed.length }, "single-access version consumed");
      if (changed.length > 0) this.#d.onChanged?.(unit, changed);
      if (failures.length > 0) return { kind: "failed", reason: failures.join("; ") };
      return { kind: "done", result: "written" };
    } finally {
      data.fill(0);
    }
  }

  /**
   * The payload of a consumed version exists only in memory: keep trying
   * to write it until it is written or the agent stops (then it is lost,
   * and the intent left in the state file says so at the next start).
   */
  async #writeWithRetries(file: SecretFileConfig, bytes: Buffer, ids: object): Promise<void> {
    const backoff = this.#d.backoff?.() ?? new Backoff();
    for (;;) {
      try {
        await writeFileAtomic(file.destination, bytes, fileOptions(file));
        return;
      } catch (err) {
        if (this.#d.signal.aborted) throw err;
        const delayMs = backoff.next();
        this.#d.logger.error(
          { ...ids, destination: file.destination, err: describe(err), delayMs },
          "cannot write a consumed single-access payload; trying again",
        );
        await sleep(delayMs, this.#d.signal);
      }
    }
  }

  async #lost(
    unit: Unit,
    record: SingleAccessRecord,
    revision: number,
    why: string,
  ): Promise<Outcome> {
    const { state, logger } = this.#d;
    logger.error(
      { secret: refKey(unit.ref), secretId: record.secretId, revision, reason: why },
      "single-access version lost: this agent will not get its payload; create a new version",
    );
    const handled = Math.max(record.handled ?? 0, revision);
    state.setSingleAccess(unit.key, { secretId: record.secretId, handled });
    try {
      await state.save();
    } catch (err) {
      return { kind: "retry", reason: `cannot write the state file: ${describe(err)}` };
    }
    return { kind: "done", result: "lost" };
  }

  /** A normal version: write each file whose content or attributes are not the target's. */
  async #write(unit: Unit, access: Access): Promise<Outcome> {
    const { state, logger } = this.#d;
    const data = access.data;
    try {
      if (crc32(data) !== access.dataCrc32) {
        return { kind: "retry", reason: "the payload arrived with a wrong checksum" };
      }
      const changed: string[] = [];
      const failures: string[] = [];
      let retry = false;
      for (const file of unit.files) {
        const record = state.fileRecord(file.destination);
        const format = formatKey(file.format);
        if (
          record !== undefined &&
          record.secretId === access.secretId &&
          record.revision === access.revision &&
          record.crc32 === access.dataCrc32 &&
          record.format === format &&
          !record.singleAccess &&
          (await fileMatches(file.destination, fileOptions(file)))
        ) {
          continue;
        }
        let bytes: Buffer;
        try {
          bytes = render(file.format, data);
        } catch (err) {
          if (!(err instanceof RenderError)) throw err;
          logger.error(
            {
              destination: file.destination,
              secret: refKey(unit.ref),
              secretId: access.secretId,
              revision: access.revision,
              reason: err.message,
            },
            "cannot render the payload; the file keeps its previous content",
          );
          failures.push(err.message);
          continue;
        }
        try {
          await writeFileAtomic(file.destination, bytes, fileOptions(file));
        } catch (err) {
          logger.warn(
            { destination: file.destination, err: describe(err) },
            "cannot write the file",
          );
          retry = true;
          continue;
        } finally {
          bytes.fill(0);
        }
        state.setFile(file.destination, {
          secretId: access.secretId,
          revision: access.revision,
          crc32: access.dataCrc32,
          format,
          singleAccess: false,
        });
        logger.info(
          {
            destination: file.destination,
            secret: refKey(unit.ref),
            secretId: access.secretId,
            revision: access.revision,
            singleAccess: false,
          },
          "file written",
        );
        changed.push(file.destination);
      }
      await this.#afterChanges(unit, changed);
      if (retry) return { kind: "retry", reason: "a file could not be written" };
      if (failures.length > 0) return { kind: "failed", reason: failures.join("; ") };
      return { kind: "done", result: changed.length > 0 ? "written" : "unchanged" };
    } finally {
      data.fill(0);
    }
  }

  /**
   * No servable target: remove the files, except those holding a consumed
   * single-access payload, which stay until the secret itself is deleted.
   */
  async #absent(unit: Unit, reason: string): Promise<Outcome> {
    const { state, logger } = this.#d;
    const changed: string[] = [];
    let kept = false;
    for (const file of unit.files) {
      const record = state.fileRecord(file.destination);
      if (record?.singleAccess && !unit.secretDeleted) {
        kept = true;
        continue;
      }
      const removed = await removeFile(file.destination);
      state.setFile(file.destination, undefined);
      if (removed) {
        logger.info(
          {
            destination: file.destination,
            secret: refKey(unit.ref),
            ...(record !== undefined && { secretId: record.secretId, revision: record.revision }),
            reason,
          },
          "file removed",
        );
        changed.push(file.destination);
      }
    }
    if (!kept) unit.secretDeleted = false;
    await this.#afterChanges(unit, changed);
    return {
      kind: "done",
      result: kept ? "kept" : changed.length > 0 ? "removed" : "absent",
    };
  }

  async #afterChanges(unit: Unit, changed: string[]): Promise<void> {
    if (changed.length === 0) return;
    await this.#d.state.save().catch((err: unknown) => {
      this.#d.logger.warn(
        { err: describe(err) },
        "cannot write the state file; will write it with the next change",
      );
    });
    this.#d.onChanged?.(unit, changed);
  }

  async #access(unit: Pick<Unit, "ref">, revision: string, noConsume: boolean): Promise<Access> {
    const { client, region, projectId, callTimeoutMs } = this.#d;
    const options = { timeoutMs: callTimeoutMs };
    if (unit.ref.kind === "id") {
      return client.accessSecretVersion(
        { region, secretId: unit.ref.id, revision, noConsume },
        options,
      );
    }
    return client.accessSecretVersionByPath(
      { region, projectId, path: unit.ref.path, name: unit.ref.name, revision, noConsume },
      options,
    );
  }
}

function unitRevision(target: RevisionTarget): string {
  return target === "latest_enabled" ? "latest_enabled" : String(target);
}

function fileOptions(file: SecretFileConfig): { mode: number; uid?: number; gid?: number } {
  return {
    mode: file.mode,
    ...(file.uid !== undefined && { uid: file.uid }),
    ...(file.gid !== undefined && { gid: file.gid }),
  };
}
