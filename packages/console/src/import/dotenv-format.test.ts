import { describe, expect, it } from "vitest";
import {
  EnvSyntaxError,
  formatDotenv,
  isDotenvKey,
  parseDotenv,
  quoteDotenvValue,
} from "./dotenv.ts";

/** Values that a careless writer breaks: each must read back exactly. */
const HARD_VALUES = [
  "plain",
  "  leading and trailing spaces  ",
  "with # hash",
  "a=b=c",
  "it's",
  'say "hi"',
  "both ' and \"",
  "back\\slash \\n not a newline",
  "line1\nline2\n",
  "crlf\r\nline",
  "lone\rreturn",
  "tab\there",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a .env value that looks like a variable.
  "$HOME and ${PATH} and \\$",
  "`backticks`",
  "unicode: é 漢字 🗝️ \u200b",
  "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n",
  "#starts with a hash",
  "'quoted'",
  '"double"',
  "trailing backslash \\",
  "\\",
  "'",
  '"',
  "\n",
  " ",
];

describe("formatDotenv", () => {
  it("quotes every value so that parseDotenv reads it back exactly", () => {
    const entries = HARD_VALUES.map((value, i) => ({ key: `K${i}`, value }));
    const text = formatDotenv(entries);
    expect(parseDotenv(text).map(({ key, value }) => ({ key, value }))).toEqual(entries);
  });

  it("reads back random strings of awkward characters", () => {
    const alphabet = ["a", " ", "'", '"', "\\", "\n", "\r", "#", "=", "$", "`", "é", "🗝", "\t"];
    let seed = 17;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const entries = Array.from({ length: 300 }, (_, i) => ({
      key: `R_${i}`,
      value: Array.from(
        { length: 1 + (next() % 12) },
        () => alphabet[next() % alphabet.length],
      ).join(""),
    }));
    expect(parseDotenv(formatDotenv(entries)).map(({ key, value }) => ({ key, value }))).toEqual(
      entries,
    );
  });

  it("writes single quotes when it can, double quotes with escapes otherwise", () => {
    expect(quoteDotenvValue("a # b")).toBe("'a # b'");
    expect(quoteDotenvValue("it's $X")).toBe('"it\'s \\$X"');
    expect(quoteDotenvValue("a\nb")).toBe('"a\\nb"');
    expect(formatDotenv([{ key: "export_ok.x-1", value: "v" }])).toBe("export_ok.x-1='v'\n");
  });

  it("refuses a name that is not a .env key, naming it", () => {
    expect(isDotenvKey("1st")).toBe(false);
    expect(() => formatDotenv([{ key: "1st", value: "v" }])).toThrow(/"1st" cannot be a .env key/);
  });
});

describe("parseDotenv's line ends and refusals", () => {
  it("stores a line break inside a quoted value as \\n in a CRLF file", () => {
    expect(parseDotenv("A='x\r\ny'\r\nB=\"p\r\nq\"\r\nC=3\r\n")).toEqual([
      { key: "A", value: "x\ny", line: 1 },
      { key: "B", value: "p\nq", line: 3 },
      { key: "C", value: "3", line: 5 },
    ]);
  });

  it("names the line of a bad key, never the text there", () => {
    const bad = () => parseDotenv("A=1\nmy hunter2 = x\n");
    expect(bad).toThrow(EnvSyntaxError);
    expect(bad).toThrow(/^Line 2: the key must be letters/);
    expect(bad).not.toThrow(/hunter2/);
  });
});
