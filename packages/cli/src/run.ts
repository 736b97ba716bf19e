import { readFileSync } from "node:fs";
import { parseCommandLine, renderHelp } from "./args.ts";
import { root } from "./commands/index.ts";
import type { Context } from "./context.ts";
import { CliError, describeCliError, ExitCode } from "./errors.ts";
import { GLOBAL_OPTIONS } from "./flags.ts";

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
      case "run": {
        const command = parsed.path.join(" ");
        ctx.errorContext.command = command;
        const runCommand = await parsed.command.load();
        return (
          (await runCommand(ctx, { values: parsed.values, args: parsed.args, command })) ??
          ExitCode.Ok
        );
      }
    }
  } catch (err) {
    // Anything but a CliError may be a server's error, told with Connect's
    // codes: loaded here, as a command that called a server has loaded it
    // already, while help and usage errors need none of it.
    const { message, hint, exitCode } =
      err instanceof CliError
        ? describeCliError(err, ctx.errorContext)
        : (await import("./rpc-errors.ts")).describeError(err, ctx.errorContext);
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
