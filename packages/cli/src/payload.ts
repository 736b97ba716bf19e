import { readFile } from "node:fs/promises";
import { SecretType } from "@coffer/api";
import type { Context } from "./context.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";

/**
 * Where a version's payload comes from: `--data`, `--from-file` (`-` is
 * stdin), or stdin when it is piped. Payload bytes are passed on as they
 * are: never trimmed, never echoed.
 */

/** Stops reading stdin well past the largest payload the server accepts (64 KiB). */
const MAX_READ = 1024 * 1024;

/**
 * Reads the payload. `implicitStdin`: read stdin when neither flag is given
 * and stdin is not a terminal (for commands whose payload is required).
 * @returns undefined when there is no payload and none is required.
 */
export async function readPayload(
  ctx: Context,
  values: { data?: string; "from-file"?: string },
  options: { required: boolean },
): Promise<Uint8Array | undefined> {
  if (values.data !== undefined && values["from-file"] !== undefined) {
    throw new UsageError("give the payload with --data or --from-file, not both");
  }
  if (values.data !== undefined) return new TextEncoder().encode(values.data);
  const file = values["from-file"];
  if (file === "-") return readStdin(ctx);
  if (file !== undefined) {
    return readFromFile(file);
  }
  if (!options.required) return undefined;
  if (ctx.io.stdin.isTTY) {
    throw new UsageError("no payload: give it with --from-file FILE, --data TEXT, or on stdin");
  }
  return readStdin(ctx);
}

/** Why a file cannot be read, in a few words, for the common cases. */
const UNREADABLE: Record<string, string> = {
  ENOENT: "no such file",
  ENOTDIR: "no such file (a part of its path is not a folder)",
  EISDIR: "it is a folder, not a file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ELOOP: "too many symbolic links",
};

/**
 * Reads `--from-file FILE`. Whatever makes it unreadable (missing, a folder,
 * no permission...), the exit code is the one `coffer --help` documents for
 * a file that cannot be read: 1.
 */
export async function readFromFile(file: string, flag = "--from-file"): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const why = UNREADABLE[code] ?? (err as Error).message;
    throw new CliError(`cannot read ${flag} ${file}: ${why}`, ExitCode.Failure);
  }
}

async function readStdin(ctx: Context): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.io.stdin) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_READ) {
      throw new UsageError(
        `the payload on stdin is larger than ${MAX_READ} bytes (at most 65,536)`,
      );
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/**
 * The payload in its type's JSON shape. An `ssh_key` payload given as a raw
 * private key file (PEM text, as ssh-keygen writes it) is wrapped into
 * `{"ssh_private_key": ...}`; anything else is passed on as it is, for the
 * server to check. Payload bytes are never echoed.
 */
export function shapePayload(type: SecretType, data: Uint8Array): Uint8Array {
  const text = type === SecretType.SSH_KEY ? pemText(data) : undefined;
  if (text === undefined) return data;
  return new TextEncoder().encode(JSON.stringify({ ssh_private_key: text }));
}

/** Whether {@link shapePayload} may change this payload, for some type. */
export function mayNeedShaping(data: Uint8Array): boolean {
  return pemText(data) !== undefined;
}

/** The payload as text when it is UTF-8 starting with a PEM header. */
function pemText(data: Uint8Array): string | undefined {
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(data);
    return text.trimStart().startsWith("-----BEGIN ") ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Where the payload came from, as the user typed it, for error messages. */
export function payloadSource(values: { data?: string; "from-file"?: string }): string {
  if (values.data !== undefined) return "--data";
  const file = values["from-file"];
  if (file === undefined || file === "-") return "the payload on stdin";
  return `--from-file ${file}`;
}
