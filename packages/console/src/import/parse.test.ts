import { describe, expect, it } from "vitest";
import { formatOfName, guessFormat, ImportFileError, parseImportFile } from "./parse.ts";

describe("formatOfName and guessFormat", () => {
  it("tells the format from a file name", () => {
    expect(formatOfName(".env")).toBe("env");
    expect(formatOfName("prod.env")).toBe("env");
    expect(formatOfName(".env.local")).toBe("env");
    expect(formatOfName("secrets.JSON")).toBe("json");
    expect(formatOfName("a.yml")).toBe("yaml");
    expect(formatOfName("a.yaml")).toBe("yaml");
    expect(formatOfName("notes.txt")).toBeUndefined();
  });

  it("guesses the format of pasted text", () => {
    expect(guessFormat('  {"a": 1}')).toBe("json");
    expect(guessFormat("# comment\nexport A=1")).toBe("env");
    expect(guessFormat("a: 1\nb: two")).toBe("yaml");
  });
});

describe("parseImportFile", () => {
  it("reads .env entries with their lines", async () => {
    expect(await parseImportFile("A=1\n\nB=2", "env")).toEqual([
      { name: "A", value: "1", where: "line 1" },
      { name: "B", value: "2", where: "line 3" },
    ]);
  });

  it("reads JSON and YAML objects with their values as parsed", async () => {
    const json = await parseImportFile('{"db": {"user": "u", "port": 5432}, "token": "t"}', "json");
    expect(json).toEqual([
      { name: "db", value: { user: "u", port: 5432 }, where: "key 1" },
      { name: "token", value: "t", where: "key 2" },
    ]);
    const yaml = await parseImportFile(
      "db:\n  user: u\n  port: 5432\ntoken: t\nlist: [1, 2]\n",
      "yaml",
    );
    expect(yaml.map((e) => [e.name, e.value])).toEqual([
      ["db", { user: "u", port: 5432 }],
      ["token", "t"],
      ["list", [1, 2]],
    ]);
  });

  it("refuses a file whose top level is not an object, and one that does not parse, without quoting it", async () => {
    await expect(parseImportFile("[1, 2]", "json")).rejects.toThrow(
      new ImportFileError(
        "The file must hold an object of names and values at its top level (got a list).",
      ),
    );
    await expect(parseImportFile("just text", "yaml")).rejects.toThrow(/got a string/);
    const bad = parseImportFile('{"a": "s3cret"', "json");
    await expect(bad).rejects.toThrow(ImportFileError);
    await expect(bad).rejects.not.toThrow(/s3cret/);
    await expect(parseImportFile("a: [unclosed", "yaml")).rejects.toThrow(
      /YAML file does not parse/,
    );
    await expect(parseImportFile("A=1\nB", "env")).rejects.toThrow(/Line 2: expected KEY=value/);
  });
});
