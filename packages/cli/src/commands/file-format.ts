import type { ImportFormat } from "@coffer/console/import";
import { UsageError } from "../errors.ts";

/** `--format` of `coffer import` and `coffer export`: dotenv (or env), json, yaml (or yml). */
export function parseFileFormat(text: string): ImportFormat {
  const t = text.toLowerCase();
  if (t === "dotenv" || t === "env" || t === ".env") return "env";
  if (t === "json") return "json";
  if (t === "yaml" || t === "yml") return "yaml";
  throw new UsageError(`--format must be dotenv, json or yaml (got "${text}")`);
}

/** The format's name as `--format` spells it. */
export function formatName(format: ImportFormat): string {
  return format === "env" ? "dotenv" : format;
}
