import { lstat, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type ImportFormat,
  parseDotenv,
  parseImportFile,
  planImport,
  type ValueKind,
} from "@coffer/console/import";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliError } from "../errors.ts";
import { type ExportedSecret, formatExport, unexportableNames } from "./export-format.ts";
import { createPrivateFile } from "./export-run.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const secret = (name: string, kind: ValueKind, text: string): ExportedSecret => ({
  name,
  kind,
  data: utf8(text),
});

/**
 * What the server would hold after `coffer import` of `text`: the rows the
 * plan creates, by name, in the server's order (ListSecrets sorts by name).
 */
async function importedSecrets(text: string, format: ImportFormat): Promise<ExportedSecret[]> {
  const rows = planImport(await parseImportFile(text, format), new Map());
  return rows
    .filter((r) => r.action === "create" && r.bytes && r.kind)
    .map((r) => ({ name: r.name, kind: r.kind as ValueKind, data: r.bytes as Uint8Array }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

describe("formatExport", () => {
  const secrets = [
    secret("API_KEY", "opaque", "  k#e=y 'q' \"d\" é\n"),
    secret("db", "database_credentials", '{"engine":"postgres","port":"5432","password":"p"}'),
    secret("flags", "key_value", '{"region":"eu","retries":3,"debug":false}'),
    secret("tls", "certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
  ];

  it("writes .env values quoted, JSON types as their JSON text", () => {
    const text = formatExport(secrets, "env");
    expect(text).toBe(
      [
        `API_KEY="  k#e=y 'q' \\"d\\" é\\n"`,
        `db='{"engine":"postgres","port":"5432","password":"p"}'`,
        `flags='{"region":"eu","retries":3,"debug":false}'`,
        `tls="-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"`,
        "",
      ].join("\n"),
    );
    expect(parseDotenv(text).map((e) => e.value)).toEqual(
      secrets.map((s) => new TextDecoder().decode(s.data)),
    );
  });

  it("writes JSON types as objects in JSON and YAML, which read back as the same values", async () => {
    for (const format of ["json", "yaml"] as const) {
      const text = formatExport(secrets, format);
      const entries = await parseImportFile(text, format);
      expect(entries.map((e) => [e.name, e.value])).toEqual([
        ["API_KEY", "  k#e=y 'q' \"d\" é\n"],
        ["db", { engine: "postgres", port: "5432", password: "p" }],
        ["flags", { region: "eu", retries: 3, debug: false }],
        ["tls", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
      ]);
    }
  });

  it("quotes in YAML the strings that YAML 1.1 readers would take for booleans or numbers", () => {
    const text = formatExport(
      [secret("a", "opaque", "on"), secret("b", "opaque", "0123"), secret("n", "opaque", "x")],
      "yaml",
    );
    expect(text).toBe('a: "on"\nb: "0123"\n"n": x\n');
  });

  it("refuses payloads that are not UTF-8 text, naming the secrets and not the bytes", () => {
    const binary = { name: "blob", kind: "opaque" as const, data: new Uint8Array([0xff, 0x00]) };
    const refuse = () => formatExport([secrets[0] as ExportedSecret, binary], "json");
    expect(refuse).toThrow(CliError);
    expect(refuse).toThrow(
      /^cannot export blob: the payload is not UTF-8 text, which a JSON file cannot hold$/,
    );
  });

  it("names the secrets whose names cannot be .env keys", () => {
    expect(unexportableNames(["OK", "1st", ".hidden", "a-b.c"], "env")).toEqual(["1st", ".hidden"]);
    expect(unexportableNames(["1st"], "json")).toEqual([]);
  });
});

describe("import, then export, then import again", () => {
  it("keeps every value of a .env file with quoting, escapes, comments, CRLF, duplicates and unicode", async () => {
    const text = [
      "# a comment",
      "export A=plain value   # inline comment",
      "B='single # kept $HOME'",
      'C="double \\"esc\\" \\\\ \\$X\\nnext"',
      'D="real',
      "multi line",
      '  value"',
      "E=https://x.test/?a=b#frag",
      "  F  =  '  spaced  '  ",
      "G=日本語 🗝",
      "A=second value wins",
      "EMPTY=",
      "H='x'\r",
      'I="crlf\r\ninside"\r',
      "",
    ].join("\n");
    const first = await importedSecrets(text, "env");
    const exported = formatExport(first, "env");
    const second = await importedSecrets(exported, "env");
    expect(second.map((s) => [s.name, new TextDecoder().decode(s.data)])).toEqual([
      ["A", "second value wins"],
      ["B", "single # kept $HOME"],
      ["C", 'double "esc" \\ $X\nnext'],
      ["D", "real\nmulti line\n  value"],
      ["E", "https://x.test/?a=b#frag"],
      ["F", "  spaced  "],
      ["G", "日本語 🗝"],
      ["H", "x"],
      ["I", "crlf\ninside"],
    ]);
    expect(second).toEqual(first);
  });

  it("keeps JSON and YAML values, key/value objects among them, with the same types", async () => {
    const json = JSON.stringify({
      token: "t0k\n\"en\" '#'",
      port: 5432,
      on: true,
      db: { user: "u", port: 5432, tls: false, note: "multi\nline" },
    });
    const yaml = "token: |\n  line one\n  line two\nport: '0123'\nkv:\n  a: 'yes'\n  b: 1.5\n";
    for (const [text, format] of [
      [json, "json"],
      [yaml, "yaml"],
    ] as const) {
      const first = await importedSecrets(text, format);
      for (const out of ["json", "yaml", "env"] as const) {
        const second = await importedSecrets(formatExport(first, out), out);
        // In .env a key/value secret is its JSON text: it comes back opaque, same bytes.
        expect(second.map((s) => [s.name, s.data])).toEqual(first.map((s) => [s.name, s.data]));
        if (out !== "env") expect(second).toEqual(first);
      }
    }
  });
});

describe("createPrivateFile", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "coffer-export-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the file with mode 0600, refuses an existing one, and replaces it only with force", async () => {
    const file = path.join(dir, "out.env");
    const handle = await createPrivateFile(file, false);
    await handle.writeFile("A='1'\n");
    await handle.close();
    expect((await lstat(file)).mode & 0o777).toBe(0o600);

    await expect(createPrivateFile(file, false)).rejects.toThrow(/exists: it is not overwritten/);
    expect(await readFile(file, "utf8")).toBe("A='1'\n");

    await writeFile(file, "old", { mode: 0o644 });
    const replaced = await createPrivateFile(file, true);
    await replaced.close();
    expect((await lstat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, "utf8")).toBe("");
  });

  it("never writes through a symbolic link", async () => {
    const target = path.join(dir, "target");
    await writeFile(target, "keep", { mode: 0o644 });
    const link = path.join(dir, "link.env");
    await symlink(target, link);
    await expect(createPrivateFile(link, false)).rejects.toThrow(/exists/);
    const handle = await createPrivateFile(link, true);
    await handle.close();
    expect(await readFile(target, "utf8")).toBe("keep");
    expect((await lstat(link)).isSymbolicLink()).toBe(false);
  });
});
