import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * What a command line loads: src/main.ts in a process of its own (through
 * tsx), with a module hook that names every module loaded on stderr. The
 * command tree is static data; a command's implementation, and the client,
 * Connect, protobuf and the generated API with it, load only when that
 * command runs, which is most of what `coffer --version` and `--help` would
 * otherwise spend their time on.
 */

const SRC = path.dirname(fileURLToPath(import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const HOOK = `export async function load(url, context, next) {
  if (url.startsWith("file:")) process.stderr.write("loaded " + url + "\\n");
  return next(url, context);
}`;
const REGISTER = `import { register } from "node:module";
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`;

/** The modules `coffer ...argv` loads after tsx, as paths from the repository's packages/, and its exit code. */
function modulesLoadedBy(...argv: string[]): { code: number | null; modules: string[] } {
  const r = spawnSync(
    process.execPath,
    [
      "--import",
      TSX,
      "--import",
      `data:text/javascript,${encodeURIComponent(REGISTER)}`,
      path.join(SRC, "main.ts"),
      ...argv,
    ],
    {
      encoding: "utf8",
      env: { PATH: process.env.PATH, COFFER_CONFIG: path.join(SRC, "no-such-profile.json") },
      timeout: 60_000,
    },
  );
  const modules = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("loaded "))
    .map((l) => fileURLToPath(l.slice("loaded ".length)))
    .filter((f) => !f.includes("/node_modules/tsx/"))
    .map((f) => path.relative(path.join(SRC, "../.."), f));
  return { code: r.status, modules };
}

/** Modules of the client, Connect, protobuf, the API, the server or the agent. */
const heavy = (m: string) =>
  /node_modules\/@(?:bufbuild|connectrpc)\//.test(m) ||
  /^(?:api|client|server|agent)\//.test(m) ||
  /node_modules\/@coffer\/(?!cli\/)/.test(m);
const implementations = (modules: string[]) =>
  modules.filter((m) => m.endsWith("-run.ts")).map((m) => path.basename(m));

describe("what a command line loads", { timeout: 120_000 }, () => {
  it("--version, --help and a usage error: the CLI's own small modules, no implementation", () => {
    for (const argv of [
      ["--version"],
      ["--help"],
      ["secret", "get", "--help"],
      ["secret", "get"],
    ]) {
      const { code, modules } = modulesLoadedBy(...argv);
      expect(code, argv.join(" ")).toBe(argv[0] === "secret" && argv.length === 2 ? 2 : 0);
      expect(modules, argv.join(" ")).toContain("cli/src/commands/index.ts");
      expect(modules.filter(heavy), argv.join(" ")).toEqual([]);
      expect(implementations(modules), argv.join(" ")).toEqual([]);
    }
  });

  it("a command: its own implementation, not the other commands' nor the server or agent", () => {
    // Without a token it stops before any call (exit 4), its modules loaded.
    const { code, modules } = modulesLoadedBy("secret", "get", "/prod/db");
    expect(code).toBe(4);
    expect(implementations(modules)).toEqual(["secret-run.ts"]);
    expect(modules.some((m) => m.startsWith("api/"))).toBe(true);
    expect(modules.filter((m) => /^(?:server|agent)\//.test(m))).toEqual([]);
  });
});
