import { describe, expect, it } from "vitest";
import { commands, group, type Parsed, parseCommandLine, renderHelp, suggest } from "./args.ts";
import { root } from "./commands/index.ts";
import { UsageError } from "./errors.ts";
import { GLOBAL_OPTIONS } from "./flags.ts";

const leaf = commands(
  {
    access: {
      summary: "print a payload",
      args: [
        { name: "SECRET", help: "the secret" },
        { name: "REVISION", help: "the revision", optional: true },
      ],
      options: {
        raw: { type: "boolean", help: "exact bytes" },
        field: { type: "string", value: "NAME", help: "one field" },
        tag: { type: "string", multiple: true, help: "a tag" },
        output: { type: "string", short: "o", help: "format", group: "output" },
        url: { type: "string", help: "server", group: "connection" },
      },
    },
  },
  async () => ({ access: async () => undefined }),
).access;
const tree = group({
  name: "coffer",
  summary: "test tree",
  children: [group({ name: "version", summary: "versions", children: [leaf] })],
});
const globals = {
  output: { type: "string", short: "o", help: "" },
  url: { type: "string", help: "" },
} as const;

function parse(...argv: string[]): Parsed {
  return parseCommandLine(tree, argv, globals);
}

function usageError(...argv: string[]): UsageError {
  try {
    parse(...argv);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error(`expected ${argv.join(" ")} to be refused`);
}

describe("parseCommandLine", () => {
  it("finds the command and its flags and arguments", () => {
    const p = parse("version", "access", "/prod/db", "3", "--field", "password", "--raw");
    expect(p.kind).toBe("run");
    if (p.kind !== "run") return;
    expect(p.path).toEqual(["coffer", "version", "access"]);
    expect(p.args).toEqual(["/prod/db", "3"]);
    expect(p.values).toEqual({ field: "password", raw: true });
  });

  it("takes flags before the command words, with their values", () => {
    const p = parse("-o", "json", "--url", "http://x:1", "version", "access", "/a");
    expect(p.kind === "run" && p.values).toEqual({ output: "json", url: "http://x:1" });
    const q = parse("--url=http://x:1", "-ojson", "version", "access", "/a");
    expect(q.kind === "run" && q.values).toEqual({ output: "json", url: "http://x:1" });
  });

  it("collects repeatable flags in order", () => {
    const p = parse("version", "access", "/a", "--tag", "x", "--tag=y");
    expect(p.kind === "run" && p.values.tag).toEqual(["x", "y"]);
  });

  it("treats what follows -- as arguments", () => {
    const p = parse("version", "access", "--", "-weird");
    expect(p.kind === "run" && p.args).toEqual(["-weird"]);
  });

  it("refuses an unknown flag, naming it and the command's help", () => {
    const err = usageError("version", "access", "/a", "--frobnicate");
    expect(err.message).toBe('unknown flag --frobnicate for "coffer version access"');
    expect(err.hint).toContain('see "coffer version access --help"');
    expect(err.exitCode).toBe(2);
  });

  it("suggests the closest flag", () => {
    expect(usageError("version", "access", "/a", "--feild", "x").message).toContain(
      'did you mean "--field"?',
    );
  });

  it("refuses an unknown command, suggesting a close one", () => {
    const err = usageError("version", "acess");
    expect(err.message).toBe(
      'unknown command "acess" for "coffer version"; did you mean "access"?',
    );
    expect(err.hint).toBe('see "coffer version --help"');
    expect(usageError("secrets").message).toContain('unknown command "secrets"');
  });

  it("refuses a flag without its value", () => {
    expect(usageError("version", "access", "/a", "--field").message).toBe(
      "--field needs a value (NAME)",
    );
  });

  it("refuses a flag whose value looks like another flag", () => {
    const err = usageError("version", "access", "/a", "--field", "--raw");
    expect(err.message).toContain('--field needs a value, but the next argument is "--raw"');
    expect(err.hint).toContain("--field=VALUE");
    const p = parse("version", "access", "/a", "--field=--raw");
    expect(p.kind === "run" && p.values.field).toBe("--raw");
  });

  it("takes - as a value (stdin)", () => {
    const p = parse("version", "access", "/a", "--field", "-");
    expect(p.kind === "run" && p.values.field).toBe("-");
  });

  it("refuses a value given to a switch", () => {
    expect(usageError("version", "access", "/a", "--raw=yes").message).toBe("--raw takes no value");
  });

  it("refuses missing and extra arguments", () => {
    expect(usageError("version", "access").message).toBe(
      'missing SECRET (the secret) for "coffer version access"',
    );
    expect(usageError("version", "access", "/a", "1", "2").message).toBe(
      'unexpected argument "2" for "coffer version access"',
    );
  });

  it("answers help for --help, -h and the help word, even with other errors around", () => {
    expect(parse("--help").kind).toBe("help");
    expect(parse("help", "version").kind).toBe("help");
    expect(parse("version", "-h").kind).toBe("help");
    const p = parse("version", "access", "--help");
    expect(p.kind === "help" && p.node).toBe(leaf);
    expect(parse("version", "access", "--help").kind).toBe("help");
  });

  it("reports a group without its command as incomplete", () => {
    expect(parse().kind).toBe("incomplete");
    expect(parse("version").kind).toBe("incomplete");
  });

  it("answers --version at the top", () => {
    expect(parse("--version").kind).toBe("version");
  });
});

describe("the real command tree", () => {
  const parseReal = (...argv: string[]) => parseCommandLine(root, argv, GLOBAL_OPTIONS);

  it("has the verbs people guess", () => {
    const names = (path: string[]) => {
      const p = parseReal(...path, "--help");
      return p.kind === "help" && p.node.kind === "group" ? p.node.children.map((c) => c.name) : [];
    };
    expect(names([])).toEqual(
      expect.arrayContaining([
        "secret",
        "version",
        "project",
        "token",
        "audit",
        "login",
        "profile",
        "server",
        "agent",
      ]),
    );
    expect(names(["secret"])).toEqual([
      "create",
      "get",
      "list",
      "update",
      "delete",
      "restore",
      "protect",
      "unprotect",
      "browse",
      "tags",
      "types",
    ]);
    expect(names(["version"])).toEqual([
      "create",
      "get",
      "list",
      "update",
      "access",
      "enable",
      "disable",
      "delete",
      "restore",
      "destroy",
    ]);
    expect(names(["project"])).toEqual(["create", "list", "rename", "delete"]);
    expect(names(["token"])).toEqual(["create", "list", "revoke"]);
    expect(names(["audit"])).toEqual(["list"]);
  });

  it("parses the session's command lines", () => {
    const create = parseReal(
      "secret",
      "create",
      "/prod/db",
      "--type",
      "database_credentials",
      "--from-file",
      "db.json",
    );
    expect(create.kind === "run" && create.values).toEqual({
      type: "database_credentials",
      "from-file": "db.json",
    });
    const access = parseReal("version", "access", "/prod/db", "--field", "password", "--raw");
    expect(access.kind === "run" && access.values).toEqual({ field: "password", raw: true });
    const list = parseReal("secret", "list", "-o", "json");
    expect(list.kind === "run" && list.values).toEqual({ output: "json" });
    const disable = parseReal("version", "disable", "/prod/db", "1");
    expect(disable.kind === "run" && disable.args).toEqual(["/prod/db", "1"]);
  });

  it("has help for every command and group", () => {
    const walk = (path: string[]): void => {
      const p = parseReal(...path.slice(1), "--help");
      expect(p.kind).toBe("help");
      if (p.kind !== "help") return;
      const text = renderHelp(p.node, p.path);
      expect(text).toContain(`${path.join(" ")}: `);
      expect(text).toContain("Usage:");
      if (p.node.kind === "group") for (const c of p.node.children) walk([...path, c.name]);
      else expect(text).toContain("--help");
    };
    walk(["coffer"]);
  });
});

describe("suggest", () => {
  it("names a close candidate only", () => {
    expect(suggest("lst", ["list", "get"])).toBe('; did you mean "list"?');
    expect(suggest("--protocl", ["--protocol", "--project"])).toBe('; did you mean "--protocol"?');
    expect(suggest("zzz", ["list", "get"])).toBe("");
  });
});
