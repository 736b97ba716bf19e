/**
 * A .env parser for bulk import: `KEY=value` lines, `#` comments (whole
 * lines, and after an unquoted value when a space precedes them), an
 * optional `export ` prefix, single quotes (literal), double quotes (with
 * `\n`, `\r`, `\t`, `\"`, `\\` escapes) and backticks (literal); quoted
 * values may span lines. Variables (`${X}`) are not expanded: a secret is
 * stored as written.
 *
 * Errors name a line and a rule, never the value found there (it is secret).
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
        `the key must be letters, digits, "_", "." or "-", starting with a letter or "_" (got ${JSON.stringify(key.slice(0, 40))})`,
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

function lineEnd(src: string, from: number): number {
  const nl = src.indexOf("\n", from);
  const end = nl === -1 ? src.length : nl;
  return end > from && src[end - 1] === "\r" ? end - 1 : end;
}
