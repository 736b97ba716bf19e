import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { RenderError, render } from "./format.ts";

const bytes = (text: string) => Buffer.from(text);
const dotenv = (value: unknown) =>
  render({ kind: "dotenv" }, bytes(JSON.stringify(value))).toString("utf8");

function renderError(fn: () => unknown): RenderError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RenderError);
    return err as RenderError;
  }
  throw new Error("expected a RenderError");
}

describe("render", () => {
  it("writes a raw payload as it is, bytes included", () => {
    const data = Buffer.from([0, 1, 2, 255, 10]);
    expect(render({ kind: "raw" }, data).equals(data)).toBe(true);
  });

  it("takes one JSON field: strings as they are, other values as JSON", () => {
    const data = bytes('{"password":"p@ss\\nword","port":5432,"tls":true,"nested":{"a":1}}');
    const field = (f: string) => render({ kind: "json_field", field: f }, data).toString("utf8");
    expect(field("password")).toBe("p@ss\nword");
    expect(field("port")).toBe("5432");
    expect(field("tls")).toBe("true");
    expect(field("nested")).toBe('{"a":1}');
  });

  it("renders dotenv lines, quoting and escaping every value", () => {
    expect(
      dotenv({
        USER: "app",
        PORT: 5432,
        DEBUG: false,
        QUOTES: `say "hi" and 'bye'`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is what is tested
        SHELL_BITS: "$(rm -rf /) `id` ${HOME} \\",
        MULTI: "line1\nline2\r\n",
      }),
    ).toBe(
      [
        'USER="app"',
        'PORT="5432"',
        'DEBUG="false"',
        `QUOTES="say \\"hi\\" and 'bye'"`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is what is tested
        'SHELL_BITS="\\$(rm -rf /) \\`id\\` \\${HOME} \\\\"',
        'MULTI="line1\\nline2\\r\\n"',
        "",
      ].join("\n"),
    );
    expect(dotenv({})).toBe("");
  });

  it("writes dotenv that a shell reads back without running or expanding anything", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "coffer-dotenv-"));
    try {
      const marker = path.join(dir, "ran");
      const values = {
        A: `$(touch ${marker})`,
        B: `\`touch ${marker}\``,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is what is tested
        C: "${PATH} $HOME \\ \" ' ; & |",
        D: "x\ny=1",
      };
      writeFileSync(path.join(dir, ".env"), dotenv(values));
      const out = execFileSync(
        "sh",
        ["-c", `set -a; . "$1"; printf '%s\\0' "$A" "$B" "$C" "$D"`, "sh", path.join(dir, ".env")],
        { encoding: "utf8", env: {} },
      );
      expect(out.split("\0").slice(0, 4)).toEqual([values.A, values.B, values.C, "x\\ny=1"]);
      expect(() => execFileSync("test", ["-e", marker])).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses payloads it cannot render, without quoting them", () => {
    const secret = "hunter2-SECRET";
    const cases: [() => unknown, string][] = [
      [
        () => render({ kind: "dotenv" }, bytes(`not json ${secret}`)),
        "the payload is not valid JSON",
      ],
      [
        () => render({ kind: "dotenv" }, bytes(`["${secret}"]`)),
        "the payload is not a JSON object",
      ],
      [
        () => dotenv({ OK: "1", [`bad-${secret}`]: "x" }),
        "key #2 of the payload is not a valid environment variable name",
      ],
      [
        () => dotenv({ "1ABC": secret }),
        "key #1 of the payload is not a valid environment variable name",
      ],
      [
        () => dotenv({ A: { nested: secret } }),
        "the value of key #1 is not a string, number or boolean",
      ],
      [() => dotenv({ A: `nul\0${secret}` }), "the value of key #1 holds a NUL character"],
      [
        () => render({ kind: "json_field", field: "password" }, bytes(`{"user":"${secret}"}`)),
        'the payload has no field "password"',
      ],
      [
        () => render({ kind: "json_field", field: "password" }, bytes('{"password":null}')),
        'the payload\'s field "password" is null',
      ],
    ];
    for (const [fn, message] of cases) {
      const err = renderError(fn);
      expect(err.message).toContain(message);
      expect(err.message).not.toContain(secret);
      expect(err.message).not.toContain("hunter2");
    }
  });
});
