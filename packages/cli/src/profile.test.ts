import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CliError } from "./errors.ts";
import {
  maskToken,
  modeProblem,
  profileFilePath,
  readProfileFile,
  writeProfileFile,
} from "./profile.ts";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-profile-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>): Promise<CliError> {
  return promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (err: unknown) => {
      expect(err).toBeInstanceOf(CliError);
      return err as CliError;
    },
  );
}

describe("where the profile file is", () => {
  it("follows COFFER_CONFIG, then XDG_CONFIG_HOME, then ~/.config", () => {
    expect(
      profileFilePath({ COFFER_CONFIG: "/etc/c.json", XDG_CONFIG_HOME: "/x" }, "/home/u"),
    ).toBe("/etc/c.json");
    expect(profileFilePath({ XDG_CONFIG_HOME: "/x" }, "/home/u")).toBe("/x/coffer/config.json");
    expect(profileFilePath({}, "/home/u")).toBe("/home/u/.config/coffer/config.json");
  });
});

describe("modeProblem", () => {
  it("accepts only owner access", () => {
    expect(modeProblem(0o100600)).toBeUndefined();
    expect(modeProblem(0o100400)).toBeUndefined();
    expect(modeProblem(0o100640)).toBe("its group can access it (mode 0640)");
    expect(modeProblem(0o100604)).toBe("other users can access it (mode 0604)");
    expect(modeProblem(0o100666)).toBe("its group and other users can access it (mode 0666)");
  });
});

describe("readProfileFile", () => {
  it("answers undefined when there is no file", async () => {
    expect(await readProfileFile(path.join(dir, "none.json"))).toBeUndefined();
  });

  it("reads a file only its owner may read", async () => {
    const file = path.join(dir, "config.json");
    await writeFile(
      file,
      JSON.stringify({ profiles: { default: { url: "http://h:1", token: "t" } } }),
      {
        mode: 0o600,
      },
    );
    expect(await readProfileFile(file)).toEqual({
      profiles: { default: { url: "http://h:1", token: "t" } },
    });
  });

  it("refuses a file others can read, saying to chmod 600 it", async () => {
    const file = path.join(dir, "config.json");
    await writeFile(file, JSON.stringify({ profiles: {} }));
    await chmod(file, 0o644);
    const err = await refusal(readProfileFile(file));
    expect(err.message).toBe(
      `refusing to read profile file ${file}: it holds tokens, and its group and other users can access it (mode 0644)`,
    );
    expect(err.hint).toBe(`run: chmod 600 ${file}`);
    expect(err.exitCode).toBe(2);
  });

  it("refuses a file that is not JSON, or not a profile file, naming the problem", async () => {
    const file = path.join(dir, "config.json");
    await writeFile(file, "{nope", { mode: 0o600 });
    expect((await refusal(readProfileFile(file))).message).toContain("is not valid JSON");
    await writeFile(file, JSON.stringify({ profiles: { default: { url: 1 } } }));
    expect((await refusal(readProfileFile(file))).message).toContain('"url" must be a string');
    await writeFile(file, JSON.stringify({ profiles: { default: { passwd: "x" } } }));
    expect((await refusal(readProfileFile(file))).message).toContain('unknown key "passwd"');
  });
});

describe("writeProfileFile", () => {
  it("writes mode 0600 in a folder of mode 0700, whatever the umask", async () => {
    const file = path.join(dir, "nested", "coffer", "config.json");
    const old = process.umask(0);
    try {
      await writeProfileFile(file, { profiles: { default: { token: "coffer_x" } } });
    } finally {
      process.umask(old);
    }
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({
      profiles: { default: { token: "coffer_x" } },
    });
    expect(await readProfileFile(file)).toEqual({ profiles: { default: { token: "coffer_x" } } });
  });

  it("replaces a file atomically, leaving no temporary file", async () => {
    const file = path.join(dir, "config.json");
    await writeProfileFile(file, { profiles: { a: {} } });
    await writeProfileFile(file, { profiles: { b: {} } });
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(dir)).toEqual(["config.json"]);
    expect(await readProfileFile(file)).toEqual({ profiles: { b: {} } });
  });
});

describe("maskToken", () => {
  it("shows the prefix only", () => {
    const token = "coffer_V6moZKjQfQO6pTeKNIj2XKpCZjjIw4xNY3UD7imjXt91UKAgp";
    expect(maskToken(token)).toBe("coffer_V6mo... (hidden)");
    expect(maskToken("short")).toBe("(hidden)");
  });
});
