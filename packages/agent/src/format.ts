import type { FileFormat } from "./config.ts";

/**
 * A payload that cannot be rendered in the configured format. Its message
 * never quotes the payload (not even a JSON parser's excerpt of it), only
 * the rule it broke.
 */
export class RenderError extends Error {
  override readonly name = "RenderError";
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Renders a payload into the bytes of its file. */
export function render(format: FileFormat, data: Uint8Array): Buffer {
  switch (format.kind) {
    case "raw":
      return Buffer.from(data);
    case "json_field":
      return renderJsonField(data, format.field);
    case "dotenv":
      return renderDotenv(data);
  }
}

/** A short, stable description of a format, kept in the state file to notice a format change. */
export function formatKey(format: FileFormat): string {
  return format.kind === "json_field" ? `json_field:${format.field}` : format.kind;
}

function parseObject(data: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    // The parser's message quotes the input: it must not reach a log.
    value = JSON.parse(Buffer.from(data).toString("utf8"));
  } catch {
    throw new RenderError("the payload is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RenderError("the payload is not a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * One field of a JSON object: a string as it is, a number or boolean as its
 * JSON text, an object or array as JSON.
 */
function renderJsonField(data: Uint8Array, field: string): Buffer {
  const object = parseObject(data);
  if (!Object.hasOwn(object, field)) {
    throw new RenderError(`the payload has no field "${field}"`);
  }
  const value = object[field];
  if (value === null) throw new RenderError(`the payload's field "${field}" is null`);
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
}

/**
 * `KEY="value"` lines from a flat JSON object (a key_value secret), in the
 * payload's order. Values are double-quoted with `\\`, `\"`, `\$`, `` \` ``,
 * `\n` and `\r` escaped: one line per key whatever the value holds, so a
 * value can never start a line of its own, and a POSIX shell `source`s it
 * without expanding or running anything. docker compose and python-dotenv
 * read every value back as it was (README: "dotenv").
 */
function renderDotenv(data: Uint8Array): Buffer {
  const object = parseObject(data);
  const lines: string[] = [];
  let index = 0;
  for (const [key, value] of Object.entries(object)) {
    index += 1;
    // Errors give the key's position, not the key: it is part of the payload.
    if (!ENV_NAME.test(key)) {
      throw new RenderError(
        `key #${index} of the payload is not a valid environment variable name (letters, digits and _, not starting with a digit)`,
      );
    }
    let text: string;
    if (typeof value === "string") text = value;
    else if (typeof value === "number" || typeof value === "boolean") text = String(value);
    else throw new RenderError(`the value of key #${index} is not a string, number or boolean`);
    if (text.includes("\0")) {
      throw new RenderError(`the value of key #${index} holds a NUL character`);
    }
    lines.push(`${key}="${escapeDotenv(text)}"`);
  }
  return Buffer.from(lines.length === 0 ? "" : `${lines.join("\n")}\n`);
}

function escapeDotenv(text: string): string {
  return text.replace(/[\\"$`\n\r]/g, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      default:
        return `\\${c}`;
    }
  });
}
