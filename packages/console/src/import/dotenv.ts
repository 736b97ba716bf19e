/**
 * A .env parser for bulk import: `KEY=value` lines, `#` comments (whole
 * lines, and after an unquoted value when a space precedes them), an
 * optional `export ` prefix, single quotes (literal), double quotes (with
 * `\n`, `\r`, `\t`, `\"`, `\\` escapes) and backticks (literal); quoted
 * values may span lines (a line break in them is stored as `\n`, also when
 * the file's lines end in `\r\n`). Variables (`${X}`) are not expanded: a
 * secret is stored as written. A key may be given twice: both entries are
 * returned, and the plan imports the later one (plan.ts).
 *
 * Errors name a line and a rule, never the text found there (a misplaced
 * value is secret, and so may be what stands where a key was expected).
 *
 * {@link formatDotenv} writes values so that this parser reads them back
 * exactly.
 */

/** One `KEY=value` of a .env file, with the line it starts on (1-based). */
export interface EnvEntry {
  key: string;
  value: string;
  line: number;
}

/** A .env file that does not parse, at a line. */
export class EnvSyntaxError extends Error {
  override readonly name = "EnvSyntaxError";
  constructor(
    readonly line: number,
    rule: string,
  ) {
    super(`Line ${line}: ${rule}`);
  }
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", '"': '"', "\\": "\\", $: "$" };

/** Parses a .env file into its entries, in file order (a repeated key appears twice). */
export function parseDotenv(text: string): EnvEntry[] {
  const src = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const entries: EnvEntry[] = [];
  let i = 0;
  let line = 1;
  const n = src.length;
  while (i < n) {
    // Start of a line: skip spaces.
    while (i < n && (src[i] === " " || src[i] === "\t")) i++;
    if (i >= n) break;
    if (src[i] === "\n" || src[i] === "\r") {
      if (src[i] === "\r" && src[i + 1] === "\n") i++;
      i++;
      line++;
      continue;
    }
    if (src[i] === "#") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    const startLine = line;
    const eq = src.indexOf("=", i);
    const eol = lineEnd(src, i);
    if (eq === -1 || eq > eol) {
      throw new EnvSyntaxError(startLine, "expected KEY=value");
    }
    let key = src.slice(i, eq).trim();
    if (key.startsWith("export ") || key.startsWith("export\t")) key = key.slice(7).trim();
    if (!KEY.test(key)) {
      throw new EnvSyntaxError(
        startLine,
        `the key must be letters, digits, "_", "." or "-", starting with a letter or "_"`,
      );
    }
    i = eq + 1;
    while (i < n && (src[i] === " " || src[i] === "\t")) i++;
    const quote = src[i];
    let value: string;
    if (quote === '"' || quote === "'" || quote === "`") {
      i++;
      let out = "";
      let closed = false;
      while (i < n) {
        const c = src[i] as string;
        if (c === quote) {
          closed = true;
          i++;
          break;
        }
        if (c === "\\" && quote === '"' && i + 1 < n) {
          const next = src[i + 1] as string;
          out += ESCAPES[next] ?? `\\${next}`;
          if (next === "\n") line++;
          i += 2;
          continue;
        }
        if (c === "\r" && src[i + 1] === "\n") {
          // A CRLF file's line break inside a value is the same value as an LF file's.
          i++;
          continue;
        }
        if (c === "\n") line++;
        out += c;
        i++;
      }
      if (!closed)
        throw new EnvSyntaxError(startLine, `the value's ${quote} quote is never closed`);
      // After the closing quote: only spaces and a comment.
      const rest = src.slice(i, lineEnd(src, i)).trim();
      if (rest !== "" && !rest.startsWith("#")) {
        throw new EnvSyntaxError(line, "unexpected text after the closing quote");
      }
      i = lineEnd(src, i);
      value = out;
    } else {
      const end = lineEnd(src, i);
      let raw = src.slice(i, end);
      const comment = raw.search(/\s#/);
      if (comment !== -1) raw = raw.slice(0, comment);
      value = raw.trim();
      i = end;
    }
    entries.push({ key, value, line: startLine });
  }
  return entries;
}

/** Whether `key` can be a .env key as {@link parseDotenv} reads them. */
export function isDotenvKey(key: string): boolean {
  return KEY.test(key);
}

/**
 * One value as a .env value that {@link parseDotenv} reads back exactly:
 * in single quotes (literal) when it holds no single quote and no line
 * break; otherwise in double quotes, with `\\`, `\"`, `\n`, `\r` and `\$`
 * escaped (the `$` so that readers that expand variables, as Docker Compose
 * does, leave it alone). Every value is quoted, so leading and trailing
 * spaces, `#` and `=` survive, and any reader sees where it ends.
 */
export function quoteDotenvValue(value: string): string {
  if (!value.includes("'") && !/[\r\n]/.test(value)) return `'${value}'`;
  const escaped = value.replace(/[\\"\n\r$]/g, (c) => DOUBLE_QUOTED_ESCAPES[c] ?? c);
  return `"${escaped}"`;
}

const DOUBLE_QUOTED_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  '"': '\\"',
  "\n": "\\n",
  "\r": "\\r",
  $: "\\$",
};

/**
 * A .env file of `KEY='value'` lines, in the order given.
 * @throws Error naming the first key that is not a .env key (see {@link isDotenvKey}).
 */
export function formatDotenv(entries: readonly { key: string; value: string }[]): string {
  return entries
    .map(({ key, value }) => {
      if (!isDotenvKey(key)) {
        throw new Error(
          `"${key}" cannot be a .env key: it must be letters, digits, "_", "." or "-", starting with a letter or "_"`,
        );
      }
      return `${key}=${quoteDotenvValue(value)}\n`;
    })
    .join("");
}

function lineEnd(src: string, from: number): number {
  const nl = src.indexOf("\n", from);
  const end = nl === -1 ? src.length : nl;
  return end > from && src[end - 1] === "\r" ? end - 1 : end;
}
