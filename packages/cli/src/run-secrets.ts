import { accessSecret, type SecretValue, SingleAccessError } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Connection } from "./connection.ts";
import { mergeVariables, type ReadSecret, type Variable, variablesOf } from "./env-names.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { secretsInFolder } from "./folder-secrets.ts";
import { fullPath } from "./output.ts";
import { isUuid, parseFolder, parseSecretRef } from "./refs.ts";

/**
 * Which secrets `coffer run` reads, and reading them: the newest enabled
 * version of each, through @coffer/client's accessSecret (CRC-32 verified;
 * a single-access version is refused unless asked for, and then spent).
 * Payload bytes are wiped once turned into variables; nothing is written
 * anywhere but into the returned map.
 */

/** What the user asked for: a folder and/or secrets. */
export interface Selection {
  /** A folder, all the secrets directly in it; undefined: none. */
  folder: string | undefined;
  /** Secrets by location or id. */
  named: Named[];
}

/** One `--secret`. */
export type Named =
  | { kind: "id"; id: string; label: string }
  | { kind: "path"; path: string; name: string; label: string };

/**
 * Reads `--path` and `--secret`: a bare name is in --path's folder (or /).
 * @throws UsageError when neither is given, or one is malformed.
 */
export function parseSelection(path: string | undefined, secrets: string[]): Selection {
  const folder = path === undefined ? undefined : parseFolder(path, "--path");
  if (folder === undefined && secrets.length === 0) {
    throw new UsageError(
      "name the secrets to run with: --path FOLDER (every secret directly in it) and/or --secret SECRET",
    );
  }
  const named = secrets.map((text): Named => {
    const ref = parseSecretRef(
      text.startsWith("/") || isUuid(text) ? text : fullPath(folder ?? "/", text),
    );
    return ref.kind === "id"
      ? { kind: "id", id: ref.id, label: ref.text }
      : { kind: "path", path: ref.path, name: ref.name, label: fullPath(ref.path, ref.name) };
  });
  return { folder, named };
}

/** One secret to read. */
interface Target {
  label: string;
  /** Known for folder entries and locations; read for ids. */
  name: string | undefined;
  ref: { secretId: string } | { path: string; name: string };
  /** Named by --secret: a failure to read it is an error, not a skip. */
  explicit: boolean;
}

/** What a read found, besides the variables. */
export interface Loaded {
  variables: Map<string, Variable>;
  /** How many secrets the variables came from. */
  secretCount: number;
  /** Secrets of the folder that were left out, and why (no enabled version...). */
  skipped: string[];
  /** Single-access versions this read consumed: `/prod/token (version 3)`. */
  consumed: string[];
  /** The secrets' ids, for the watch. */
  secretIds: string[];
}

/** Reads at most this many secrets at once. */
const PARALLEL = 8;

/**
 * Reads every selected secret and maps it to variables.
 * @throws CliError: a named secret that cannot be read, single-access
 * versions without `consumeSingleAccess` (listing them all, before any is
 * spent), two sources of one variable, an empty selection.
 */
export async function loadVariables(
  conn: Connection,
  projectId: string,
  selection: Selection,
  options: { prefix: string; consumeSingleAccess: boolean },
): Promise<Loaded> {
  const region = conn.settings.region;
  const targets = await targetsOf(conn, projectId, selection);
  const skipped: string[] = [];
  // By secret id: one secret named twice (by --path and --secret) is spent once.
  const singleAccess = new Map<string, Target>();
  const read = new Map<Target, SecretValue>();
  const readOne = async (t: Target, consume: boolean) => {
    const value = await accessSecret(conn.secrets, t.ref, {
      projectId,
      region,
      consumeSingleAccess: consume,
    });
    read.set(t, value);
  };
  try {
    // First without consuming anything: every single-access version is then
    // known (and refused together) before the first one is spent.
    await eachLimited(targets, async (t) => {
      try {
        await readOne(t, false);
      } catch (err) {
        if (err instanceof SingleAccessError) {
          if (!singleAccess.has(err.secretId)) singleAccess.set(err.secretId, t);
        } else if (!t.explicit && isUnreadable(err)) skipped.push(`${t.label}: ${err.rawMessage}`);
        else throw named(err, t);
      }
    });
    const spendable = [...singleAccess.values()];
    if (spendable.length > 0 && !options.consumeSingleAccess) {
      throw new CliError(
        `single-access secret${spendable.length > 1 ? "s" : ""} ${spendable.map((t) => t.label).join(", ")}: reading consumes ${spendable.length > 1 ? "them" : "it"}`,
        ExitCode.Conflict,
        "add --single-access to read and consume them, or leave them out",
      );
    }
    const consumed: string[] = [];
    for (const t of spendable) {
      await readOne(t, true).catch((err) => {
        throw named(err, t);
      });
      consumed.push(`${t.label} (version ${read.get(t)?.revision})`);
    }
    // One secret named twice (by --path and --secret, or by id and location) counts once.
    const seen = new Set<string>();
    const variables: Variable[] = [];
    for (const t of targets) {
      const value = read.get(t);
      if (value === undefined || seen.has(value.secretId)) continue;
      seen.add(value.secretId);
      const name = t.name ?? (await nameOf(conn, value.secretId));
      const secret: ReadSecret = { label: t.label, name, type: value.type, bytes: value.bytes };
      variables.push(...variablesOf(secret, options.prefix));
    }
    if (seen.size === 0) {
      throw new CliError(
        `no secret to run with${selection.folder !== undefined ? ` in ${selection.folder}` : ""}${skipped.length > 0 ? ` (skipped: ${skipped.join("; ")})` : ""}`,
        ExitCode.NotFound,
        '"coffer secret browse" shows what is there; --path reads one folder, not its subfolders',
      );
    }
    return {
      variables: mergeVariables(variables),
      secretCount: seen.size,
      skipped,
      consumed,
      secretIds: [...seen],
    };
  } finally {
    // Strings cannot be wiped; the bytes they were made of can.
    for (const value of read.values()) value.wipe();
  }
}

async function targetsOf(
  conn: Connection,
  projectId: string,
  selection: Selection,
): Promise<Target[]> {
  const targets: Target[] = [];
  if (selection.folder !== undefined) {
    for (const s of await secretsInFolder(conn, projectId, selection.folder)) {
      targets.push({
        label: fullPath(s.path, s.name),
        name: s.name,
        ref: { secretId: s.id },
        explicit: false,
      });
    }
  }
  for (const n of selection.named) {
    targets.push(
      n.kind === "id"
        ? { label: n.label, name: undefined, ref: { secretId: n.id }, explicit: true }
        : { label: n.label, name: n.name, ref: { path: n.path, name: n.name }, explicit: true },
    );
  }
  return targets;
}

/** The name of a secret given by id (its access answer has none). */
async function nameOf(conn: Connection, secretId: string): Promise<string> {
  const res = await conn.secrets.getSecret({ region: conn.settings.region, secretId });
  if (res.secret === undefined) throw new CliError(`no secret ${secretId}`, ExitCode.NotFound);
  return res.secret.name;
}

/** A folder's secret with nothing to serve: no enabled version, or locked. */
function isUnreadable(err: unknown): err is ConnectError {
  return (
    err instanceof ConnectError &&
    (err.code === Code.NotFound || err.code === Code.FailedPrecondition)
  );
}

/** A server's refusal, prefixed with the secret it was about. */
function named(err: unknown, t: Target): unknown {
  if (!(err instanceof ConnectError)) return err;
  return new ConnectError(`${t.label}: ${err.rawMessage}`, err.code, err.metadata);
}

/** Runs `work` on every item, at most {@link PARALLEL} at a time; the first failure wins. */
async function eachLimited<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
}
