import { describe, expect, it } from "vitest";
import { EnvSyntaxError, parseDotenv } from "./dotenv.ts";

describe("parseDotenv", () => {
  it("reads KEY=value lines, skipping blank lines and comments", () => {
    const text = "# a comment\n\nA=1\n  B = two words  \n#C=3\n";
    expect(parseDotenv(text)).toEqual([
      { key: "A", value: "1", line: 3 },
      { key: "B", value: "two words", line: 4 },
    ]);
  });

  it("drops an `export ` prefix and an inline comment after an unquoted value", () => {
    expect(parseDotenv("export TOKEN=abc # the token\nURL=http://x/#frag")).toEqual([
      { key: "TOKEN", value: "abc", line: 1 },
      { key: "URL", value: "http://x/#frag", line: 2 },
    ]);
  });

  it("keeps single-quoted and backticked values literal, and unescapes double-quoted ones", () => {
    const text = [
      "S='a \\n b # not a comment'",
      'D="line1\\nline2\\t\\"q\\" \\\\ $HOME"',
      "B=`x 'y' \"z\"`",
    ].join("\n");
    expect(parseDotenv(text).map((e) => e.value)).toEqual([
      "a \\n b # not a comment",
      'line1\nline2\t"q" \\ $HOME',
      "x 'y' \"z\"",
    ]);
  });

  it("reads a quoted value over several lines and counts lines after it", () => {
    const text = 'KEY="-----BEGIN X-----\nabc\n-----END X-----"\nNEXT=1\r\nLAST=2';
    expect(parseDotenv(text)).toEqual([
      { key: "KEY", value: "-----BEGIN X-----\nabc\n-----END X-----", line: 1 },
      { key: "NEXT", value: "1", line: 4 },
      { key: "LAST", value: "2", line: 5 },
    ]);
  });

  it("keeps an empty value and a repeated key", () => {
    expect(parseDotenv("A=\nA=2").map((e) => [e.key, e.value])).toEqual([
      ["A", ""],
      ["A", "2"],
    ]);
  });

  it("refuses a line without =, a bad key and an unclosed quote, naming the line, not the value", () => {
    expect(() => parseDotenv("A=1\nnot a pair")).toThrow(
      new EnvSyntaxError(2, "expected KEY=value"),
    );
    expect(() => parseDotenv("1A=x")).toThrow(/Line 1: the key must be/);
    const unclosed = () => parseDotenv('A=1\nB="hunter2\nC=3');
    expect(unclosed).toThrow(/Line 2: the value's " quote is never closed/);
    expect(unclosed).not.toThrow(/hunter2/);
    expect(() => parseDotenv('A="x" y')).toThrow(/unexpected text after the closing quote/);
  });
});
