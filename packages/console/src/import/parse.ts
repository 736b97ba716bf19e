import { parseDotenv } from "./dotenv.ts";

/**
 * Reads a bulk-import file (.env, JSON or YAML) into named values, each with
 * where it came from. The file's format is told by its name, or guessed from
 * its text when it was pasted: `{` opens JSON, `KEY=value` lines a .env
 * file, anything else is read as YAML (of which JSON is a subset).
 */

export type ImportFormat = "env" | "json" | "yaml";

/** Largest import file: many secrets of up to 64 KiB each, but not without end. */
export const MAX_IMPORT_FILE_BYTES = 1_048_576;

/** One top-level entry of the file: its name, its value as parsed, and where it is. */
export interface ImportEntry {
  name: string;
  value: unknown;
  /** "line 3" for .env, "key 2" for JSON and YAML: where a person finds it in the file. */
  where: string;
}

/** A file that could not be read at all. */
export class ImportFileError extends Error {
  override readonly name = "ImportFileError";
}

/** The format a file name says, or undefined. */
export function formatOfName(fileName: string): ImportFormat | undefined {
  const lower = fileName.toLowerCase();
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".yaml") || lower.endsWith(".yml")) return "yaml";
  if (lower === ".env" || lower.endsWith(".env") || lower.includes(".env.")) return "env";
  return undefined;
}

/** The format of pasted text, guessed from its first meaningful line. */
export function guessFormat(text: string): ImportFormat {
  const body = text.replace(/^\uFEFF/, "").trimStart();
  if (body.startsWith("{")) return "json";
  const first = body
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  if (first !== undefined && /^(export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*=/.test(first)) return "env";
  return "yaml";
}

/**
 * Parses a file into its entries, refusing a file whose top level is not a
 * mapping. The YAML parser is loaded only when a YAML file is read, so it
 * is not part of what the console's first screen downloads.
 */
export async function parseImportFile(text: string, format: ImportFormat): Promise<ImportEntry[]> {
  if (format === "env") {
    try {
      return parseDotenv(text).map((e) => ({
        name: e.key,
        value: e.value,
        where: `line ${e.line}`,
      }));
    } catch (err) {
      throw new ImportFileError(`This .env file does not parse. ${(err as Error).message}.`);
    }
  }
  let value: unknown;
  if (format === "json") {
    try {
      value = JSON.parse(text);
    } catch {
      // JSON.parse's message can quote the text, which may be secret.
      throw new ImportFileError(
        "This JSON file does not parse; check its commas, quotes and braces.",
      );
    }
  } else {
    const yaml = await import("yaml");
    // Node's build of yaml is CommonJS: bundled by esbuild into a chunk of
    // the CLI (coffer import), a dynamic import of it has only a default export.
    const parseYaml = yaml.parse ?? (yaml as unknown as { default: typeof yaml }).default.parse;
    try {
      value = parseYaml(text, { maxAliasCount: 100 });
    } catch (err) {
      const pos = (err as { linePos?: Array<{ line: number }> }).linePos?.[0]?.line;
      throw new ImportFileError(
        `This YAML file does not parse${pos ? ` (line ${pos})` : ""}; check its indentation and quotes.`,
      );
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ImportFileError(
      `The file must hold an object of names and values at its top level (got ${describe(value)}).`,
    );
  }
  return Object.entries(value as Record<string, unknown>).map(([name, v], index) => ({
    name,
    value: v,
    where: `key ${index + 1}`,
  }));
}

/** "a list", "a number", "null": what a value is, for messages. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing (null)";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return "a date";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}
