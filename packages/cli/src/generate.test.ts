import { describe, expect, it } from "vitest";
import { parseCommandLine, renderHelp } from "./args.ts";
import { root } from "./commands/index.ts";
import { UsageError } from "./errors.ts";
import { GLOBAL_OPTIONS } from "./flags.ts";
import {
  CHARSETS,
  checkGeneratedType,
  checkShowGenerated,
  DEFAULT_LENGTH,
  entropyBits,
  generatePayload,
  parseGenerate,
  randomString,
} from "./generate.ts";

function usage(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("parseGenerate (--generate [LENGTH] --charset)", () => {
  it("is off without --generate, and then refuses --charset and --show-generated", () => {
    expect(parseGenerate({})).toBeUndefined();
    expect(usage(() => parseGenerate({ charset: "hex" }))).toBe("--charset goes with --generate");
    expect(usage(() => parseGenerate({ "show-generated": true }))).toBe(
      "--show-generated goes with --generate",
    );
  });

  it("defaults to 32 alnum characters", () => {
    expect(parseGenerate({ generate: "" })).toEqual({
      length: DEFAULT_LENGTH,
      charsetName: "alnum",
      alphabet: CHARSETS.alnum,
    });
    expect(DEFAULT_LENGTH).toBe(32);
  });

  it("checks the length's bounds, naming the flag", () => {
    expect(parseGenerate({ generate: "4" })?.length).toBe(4);
    expect(parseGenerate({ generate: "65536" })?.length).toBe(65536);
    for (const bad of ["3", "0", "65537", "1e3", "-5", "12.5"]) {
      expect(usage(() => parseGenerate({ generate: bad }))).toBe(
        `--generate LENGTH must be a whole number from 4 to 65536 (got "${bad}")`,
      );
    }
  });

  it("is exclusive with --data and --from-file", () => {
    expect(usage(() => parseGenerate({ generate: "", data: "x" }))).toBe(
      "give the payload with one of --data, --from-file or --generate, not both --data and --generate",
    );
    expect(usage(() => parseGenerate({ generate: "", "from-file": "f" }))).toMatch(
      /not both --from-file and --generate/,
    );
  });

  it("takes a named charset or the characters themselves", () => {
    for (const name of Object.keys(CHARSETS)) {
      expect(parseGenerate({ generate: "", charset: name })?.alphabet).toBe(CHARSETS[name]);
    }
    expect(parseGenerate({ generate: "", charset: "ab12!" })).toMatchObject({
      charsetName: "custom",
      alphabet: "ab12!",
    });
    expect(usage(() => parseGenerate({ generate: "", charset: "aab" }))).toMatch(/lists "a" twice/);
    expect(usage(() => parseGenerate({ generate: "", charset: "a" }))).toMatch(/at least two/);
    expect(usage(() => parseGenerate({ generate: "", charset: "a b" }))).toMatch(
      /^--charset must be alnum, alpha, numeric, hex, base64url, symbols, or the characters/,
    );
    expect(usage(() => parseGenerate({ generate: "", charset: "é1" }))).toMatch(/^--charset/);
  });

  it("a generated value fits opaque secrets only; --show-generated refuses -o json", () => {
    expect(() => checkGeneratedType("opaque")).not.toThrow();
    expect(usage(() => checkGeneratedType("key_value"))).toMatch(
      /--generate makes an opaque payload .* type is key_value/,
    );
    expect(usage(() => checkShowGenerated({ "show-generated": true }, "json"))).toMatch(
      /leave out -o json/,
    );
    expect(() => checkShowGenerated({ "show-generated": true }, "table")).not.toThrow();
  });
});

describe("randomString", () => {
  it("draws only from the alphabet, with the length asked for", () => {
    for (const [name, alphabet] of Object.entries(CHARSETS)) {
      const value = randomString(500, alphabet);
      expect(value).toHaveLength(500);
      for (const c of value) expect(alphabet, name).toContain(c);
    }
    const bytes = generatePayload({
      length: 40,
      charsetName: "hex",
      alphabet: CHARSETS.hex as string,
    });
    expect(new TextDecoder().decode(bytes)).toMatch(/^[0-9a-f]{40}$/);
  });

  it("is unbiased: a chi-square test over an alphabet that does not divide 256", () => {
    // 62 characters: a byte reduced modulo 62 would make the first 8 about
    // 25% more likely than the others, which this test would see at once.
    const alphabet = CHARSETS.alnum as string;
    const draws = 124_000;
    const counts = new Map<string, number>();
    for (const c of randomString(draws, alphabet)) counts.set(c, (counts.get(c) ?? 0) + 1);
    const expected = draws / alphabet.length;
    let chi2 = 0;
    for (const c of alphabet) chi2 += ((counts.get(c) ?? 0) - expected) ** 2 / expected;
    // 61 degrees of freedom: the mean is 61, and 130 is past p = 1e-6.
    expect(chi2).toBeLessThan(130);
    // The modulo bias would show as the first characters being drawn more often.
    const first8 = [...alphabet.slice(0, 8)].reduce((n, c) => n + (counts.get(c) ?? 0), 0);
    expect(first8 / (8 * expected)).toBeLessThan(1.08);
  });

  it("reports the entropy of what it makes", () => {
    expect(
      entropyBits({ length: 32, charsetName: "alnum", alphabet: CHARSETS.alnum as string }),
    ).toBe(190);
    expect(entropyBits({ length: 64, charsetName: "hex", alphabet: CHARSETS.hex as string })).toBe(
      256,
    );
  });
});

describe("the command line of --generate and coffer run", () => {
  const parse = (...argv: string[]) => {
    const parsed = parseCommandLine(root, argv, GLOBAL_OPTIONS);
    if (parsed.kind !== "run") throw new Error(`parsed as ${parsed.kind}`);
    return parsed;
  };

  it("--generate takes an optional length: bare, separate or inline", () => {
    expect(parse("secret", "create", "/a", "--generate").values.generate).toBe("");
    expect(parse("secret", "create", "/a", "--generate", "40").values.generate).toBe("40");
    expect(parse("secret", "create", "/a", "--generate=40").values.generate).toBe("40");
    const p = parse("version", "create", "--generate", "/a", "--charset", "hex");
    expect(p.values.generate).toBe("");
    expect(p.args).toEqual(["/a"]);
    expect(parse("secret", "create", "--generate", "12", "/a").args).toEqual(["/a"]);
  });

  it("help shows the optional value and where the command goes", () => {
    const help = (...path: string[]) => {
      const parsed = parseCommandLine(root, [...path, "--help"], GLOBAL_OPTIONS);
      if (parsed.kind !== "help") throw new Error(`parsed as ${parsed.kind}`);
      return renderHelp(parsed.node, parsed.path);
    };
    expect(help("secret", "create")).toMatch(
      / {2}--generate \[LENGTH\] +the payload is a random value/,
    );
    expect(help("run")).toContain("Usage:\n  coffer run [flags] -- COMMAND...\n");
  });

  it("coffer run says where the program's flags go", () => {
    try {
      parseCommandLine(
        root,
        ["run", "--path", "/p", "node", "--inspect", "app.js"],
        GLOBAL_OPTIONS,
      );
      throw new Error("expected a UsageError");
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).message).toBe('unknown flag --inspect for "coffer run"');
      expect((err as UsageError).hint).toBe(
        'COMMAND\'s own flags go after "--": coffer run [flags] -- COMMAND...\nsee "coffer run --help"',
      );
    }
  });

  it("coffer run keeps everything after -- as the command, flags included", () => {
    const p = parse("run", "--path", "/prod", "--watch", "--", "node", "-e", "x", "--path", "y");
    expect(p.values).toMatchObject({ path: "/prod", watch: true });
    expect(p.args).toEqual(["node", "-e", "x", "--path", "y"]);
  });
});
