import { randomBytes } from "node:crypto";
import { link, mkdir, open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";

/** Master keys are AES-256 keys. */
export const MASTER_KEY_BYTES = 32;

/** Key ids are stored beside every ciphertext, so they stay short and plain. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The environment variable read by {@link parseMasterKeys}; named in its errors. */
export const MASTER_KEYS_SETTING = "COFFER_MASTER_KEYS";

/**
 * The master keys this server can unwrap data keys with. New data keys are
 * always wrapped with `activeId`; the other keys exist so that rows written
 * before a rotation stay readable until they are rewrapped.
 */
export type KeyRing = {
  readonly activeId: string;
  /** 32-byte keys by id; always contains `activeId`. */
  readonly keys: ReadonlyMap<string, Buffer>;
};

/**
 * A key ring could not be built from configuration. The message names the
 * setting or file and the rule it broke, and never contains key bytes.
 */
export class KeyRingError extends Error {
  override readonly name = "KeyRingError";
}

/** Returns a fresh random 32-byte master key. */
export function generateKey(): Buffer {
  return randomBytes(MASTER_KEY_BYTES);
}

/**
 * Parses COFFER_MASTER_KEYS, `id1:BASE64,id2:BASE64`. The first listed key is
 * the active one, so rotating means prepending a new key and keeping the old
 * ones until every row has been rewrapped. Whitespace around entries, ids and
 * keys is ignored; standard and URL-safe base64 are both accepted.
 *
 * @throws KeyRingError naming the setting and the broken rule.
 */
export function parseMasterKeys(value: string): KeyRing {
  const where = MASTER_KEYS_SETTING;
  if (value.trim() === "") {
    throw new KeyRingError(`${where}: must list at least one key as id:base64`);
  }
  const keys = new Map<string, Buffer>();
  let activeId: string | undefined;
  for (const [index, rawEntry] of value.split(",").entries()) {
    // Entries are referred to by position, never echoed: a malformed entry
    // is most likely a bare key pasted without its id.
    const entry = rawEntry.trim();
    const position = `entry ${index + 1}`;
    if (entry === "") {
      throw new KeyRingError(`${where}: ${position} is empty; expected id:base64`);
    }
    const colon = entry.indexOf(":");
    if (colon < 0) {
      throw new KeyRingError(`${where}: ${position} must have the form id:base64`);
    }
    const id = entry.slice(0, colon).trim();
    checkKeyId(where, position, id);
    if (keys.has(id)) {
      throw new KeyRingError(`${where}: key id ${JSON.stringify(id)} is listed more than once`);
    }
    keys.set(id, decodeKey(where, id, entry.slice(colon + 1).trim()));
    activeId ??= id;
  }
  if (activeId === undefined) {
    throw new KeyRingError(`${where}: must list at least one key as id:base64`);
  }
  return { activeId, keys };
}

/**
 * Reads a key file written by {@link createKeyFile} or by hand:
 * `{ "active": "k1", "keys": { "k1": "<base64 of 32 bytes>" } }`.
 *
 * @throws KeyRingError naming the path when the file is missing, is
 * accessible by group or others, is malformed, or lacks its active key.
 */
export async function loadKeyFile(path: string): Promise<KeyRing> {
  const ring = await readKeyFile(path);
  if (ring === undefined) {
    throw new KeyRingError(`key file ${JSON.stringify(path)} does not exist`);
  }
  return ring;
}

/**
 * Creates a key file holding one fresh key, with mode 0600, creating its
 * parent directory with mode 0700 if needed. Never overwrites: when another
 * process created the file first, that file is loaded and returned instead.
 *
 * @throws KeyRingError when the file cannot be written, or when an existing
 * file fails the checks of {@link loadKeyFile}.
 */
export async function createKeyFile(path: string): Promise<KeyRing> {
  const id = newKeyId();
  const ring: KeyRing = { activeId: id, keys: new Map([[id, generateKey()]]) };
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new KeyRingError(`cannot create directory ${JSON.stringify(dir)} for key file`, {
      cause,
    });
  }

  // The content goes to a private temporary file (exclusive create, "wx")
  // that is complete and synced before link() publishes it. link() fails with
  // EEXIST rather than replacing, so the first creator wins, and a concurrent
  // reader can never see the final path empty or half written -- which a
  // plain "wx" open of the final path followed by a write would allow.
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      // The umask may only remove bits, but set the mode exactly regardless.
      await handle.chmod(0o600);
      await handle.writeFile(serializeKeyFile(ring), "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
    } catch (error) {
      if (errorCode(error) === "EEXIST") {
        return await loadKeyFile(path);
      }
      throw error;
    }
    await syncDirectory(dir);
    return ring;
  } catch (cause) {
    if (cause instanceof KeyRingError) {
      throw cause;
    }
    throw new KeyRingError(`cannot create key file ${JSON.stringify(path)}`, { cause });
  } finally {
    await unlink(temp).catch(() => {
      // Already gone, or never created because open() failed.
    });
  }
}

/**
 * Loads the key file at `path`, creating it with a fresh key when it does not
 * exist. Safe to call from several processes at once: all of them end up with
 * the same key.
 */
export async function loadOrCreateKeyFile(path: string): Promise<KeyRing> {
  return (await readKeyFile(path)) ?? (await createKeyFile(path));
}

/**
 * Adds a fresh key to the key file at `path` and makes it the active key,
 * keeping every other key so that data keys wrapped with them stay readable
 * until they are rewrapped. The file is replaced atomically: the new content
 * goes to a private temporary file (mode 0600) that is synced, then renamed
 * over the old one, so a crash leaves either the old ring or the new one.
 * Returns the new ring.
 *
 * Concurrent calls on one file are refused rather than merged, through a
 * lock file beside it (`<path>.lock`): two writers that each read the old
 * ring and add their own key would otherwise lose one of the two keys, and
 * with it every data key already wrapped with it.
 *
 * @throws KeyRingError when the file fails the checks of {@link loadKeyFile},
 * is locked by another writer, or cannot be replaced.
 */
export async function addKeyToFile(path: string): Promise<KeyRing> {
  const where = `key file ${JSON.stringify(path)}`;
  const lockPath = `${path}.lock`;
  let lock: Awaited<ReturnType<typeof open>>;
  try {
    lock = await open(lockPath, "wx", 0o600);
  } catch (cause) {
    if (errorCode(cause) === "EEXIST") {
      throw new KeyRingError(
        `${where} is being changed by another process (${JSON.stringify(lockPath)} exists); if no key rotation is running, remove that lock file and try again`,
      );
    }
    throw new KeyRingError(`cannot lock ${where}`, { cause });
  }
  try {
    const current = await loadKeyFile(path);
    let id = newKeyId();
    while (current.keys.has(id)) {
      id = newKeyId();
    }
    // The new key is listed first, as the active key of COFFER_MASTER_KEYS is.
    const ring: KeyRing = { activeId: id, keys: new Map([[id, generateKey()], ...current.keys]) };
    await replaceFile(path, serializeKeyFile(ring));
    return ring;
  } finally {
    await lock.close();
    await unlink(lockPath).catch(() => {
      // Removed by hand meanwhile; nothing left to release.
    });
  }
}

/** Atomically replaces the file at `path` with `content`, mode 0600. */
async function replaceFile(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    await syncDirectory(dir);
  } catch (cause) {
    await unlink(temp).catch(() => {
      // Never created, or already renamed into place.
    });
    throw new KeyRingError(`cannot write key file ${JSON.stringify(path)}`, { cause });
  }
}

/** Renders a key ring in the key file format; the result contains key material. */
export function serializeKeyFile(ring: KeyRing): string {
  const keys: Record<string, string> = {};
  for (const [id, key] of ring.keys) {
    keys[id] = key.toString("base64");
  }
  return `${JSON.stringify({ active: ring.activeId, keys }, null, 2)}\n`;
}

/** Reads and validates a key file; undefined when it does not exist. */
async function readKeyFile(path: string): Promise<KeyRing | undefined> {
  const where = `key file ${JSON.stringify(path)}`;
  let text: string;
  try {
    const handle = await open(path, "r");
    try {
      // fstat the descriptor that is read, so the mode checked is the mode of
      // the file whose content is used, even if the path is swapped meanwhile.
      const stats = await handle.stat();
      if (!stats.isFile()) {
        throw new KeyRingError(`${where} is not a regular file`);
      }
      // Windows reports 0o666 for every writable file; its ACLs are not
      // visible through the mode, so the check would only ever refuse.
      if (process.platform !== "win32" && (stats.mode & 0o077) !== 0) {
        const mode = (stats.mode & 0o777).toString(8).padStart(3, "0");
        throw new KeyRingError(
          `${where} must not be accessible by group or others (mode ${mode}); run chmod 600 on it`,
        );
      }
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (cause) {
    if (cause instanceof KeyRingError) {
      throw cause;
    }
    if (errorCode(cause) === "ENOENT") {
      return undefined;
    }
    throw new KeyRingError(`cannot read ${where}`, { cause });
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // No cause: JSON.parse messages quote the input, which holds the keys.
    throw new KeyRingError(`${where} is not valid JSON`);
  }
  if (!isRecord(parsed) || typeof parsed.active !== "string" || !isRecord(parsed.keys)) {
    throw new KeyRingError(
      `${where} must be a JSON object {"active": "<id>", "keys": {"<id>": "<base64>"}}`,
    );
  }
  const keys = new Map<string, Buffer>();
  for (const [index, [id, encoded]] of Object.entries(parsed.keys).entries()) {
    checkKeyId(where, `key ${index + 1}`, id);
    if (typeof encoded !== "string") {
      throw new KeyRingError(`${where}: key ${JSON.stringify(id)} must be a base64 string`);
    }
    keys.set(id, decodeKey(where, id, encoded.trim()));
  }
  const activeId = parsed.active;
  if (!keys.has(activeId)) {
    // Only echo the active id when it is a well-formed id, not stray content.
    const shown = KEY_ID_PATTERN.test(activeId) ? ` ${JSON.stringify(activeId)}` : "";
    throw new KeyRingError(`${where}: active key${shown} is not among its keys`);
  }
  return { activeId, keys };
}

function checkKeyId(where: string, position: string, id: string): void {
  if (!KEY_ID_PATTERN.test(id)) {
    // The id is not echoed: when it breaks the rule it may well be a key.
    throw new KeyRingError(
      `${where}: ${position} has an invalid key id (must match ${KEY_ID_PATTERN})`,
    );
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeKey(where: string, id: string, encoded: string): Buffer {
  const rule = `${where}: key ${JSON.stringify(id)} must be ${MASTER_KEY_BYTES} bytes of base64`;
  // Buffer.from silently skips characters outside the alphabet, so check first.
  if (!BASE64.test(encoded)) {
    throw new KeyRingError(`${rule} (not valid base64)`);
  }
  const decoded = Buffer.from(encoded, "base64");
  try {
    if (decoded.length !== MASTER_KEY_BYTES) {
      throw new KeyRingError(`${rule} (got ${decoded.length})`);
    }
    // Small decoded buffers are slices of a shared pool; give the key its own
    // memory so it is not exposed through the pool's other users.
    const key = Buffer.alloc(MASTER_KEY_BYTES);
    decoded.copy(key);
    return key;
  } finally {
    decoded.fill(0);
  }
}

/** `k-<yyyymmdd>-<4 hex>`: sortable by creation day, unique enough per day. */
function newKeyId(now = new Date()): string {
  const day = now.toISOString().slice(0, 10).replaceAll("-", "");
  return `k-${day}-${randomBytes(2).toString("hex")}`;
}

/** Makes a new directory entry durable; a lost key file means lost secrets. */
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === "win32") {
    return;
  }
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorCode(error: unknown): unknown {
  return isRecord(error) ? error.code : undefined;
}
