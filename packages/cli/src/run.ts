import { readFileSync } from "node:fs";
import { parseCommandLine, renderHelp } from "./args.ts";
import { root } from "./commands/index.ts";
import { GLOBAL_OPTIONS } from "./connection.ts";
import type { Context } from "./context.ts";
import { describeError, ExitCode } from "./errors.ts";

/**
 * Runs one command line and returns the exit code. Everything the user sees
 * goes through `ctx.io`: results on stdout, errors and notes on stderr, as
 * `coffer: <what went wrong>` then `hint: <what to do>`.
 */
export async function run(argv: string[], ctx: Context): Promise<number> {
  try {
    const parsed = parseCommandLine(root, argv, GLOBAL_OPTIONS);
    switch (parsed.kind) {
      case "version":
        await ctx.io.stdout.write(`coffer ${version()}\n`);
        return ExitCode.Ok;
      case "help":
        await ctx.io.stdout.write(renderHelp(parsed.node, parsed.path));
        return ExitCode.Ok;
      case "incomplete": {
        const name = parsed.path.join(" ");
        await ctx.io.stderr.write(
          `${name}: missing command\n\n${renderHelp(parsed.node, parsed.path)}`,
        );
        return ExitCode.Usage;
      }
      case "run":
        ctx.errorContext.command = parsed.path.join(" ");
        return (
          (await parsed.command.run(ctx, {
            values: parsed.values,
            args: parsed.args,
            command: ctx.errorContext.command,
          })) ?? ExitCode.Ok
        );
    }
  } catch (err) {
    const { message, hint, exitCode } = describeError(err, ctx.errorContext);
    const hints = hint ? hint.split("\n").map((h) => `hint: ${h}\n`) : [];
    await ctx.io.stderr.write(`coffer: ${message}\n${hints.join("")}`);
    return exitCode;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}
