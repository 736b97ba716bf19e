import {
  AgentConfigError,
  loadAgentConfig,
  runOnce,
  StateFileError,
  startAgent,
} from "@coffer/agent";
import type { Runs } from "../args.ts";
import { CliError, ExitCode } from "../errors.ts";
import type { AGENT } from "./agent.ts";

/**
 * `coffer agent`: the sidecar (@coffer/agent) in this process, as
 * `coffer-agent` runs it, with the same exit codes. @coffer/agent is
 * imported only here, as server-run.ts imports the server.
 */
export const run: Runs<typeof AGENT> = {
  async agent(_ctx, { values }) {
    if (values.config === undefined) {
      throw new CliError(
        "--config is required: the agent's YAML config",
        ExitCode.Usage,
        'see "coffer agent --help"',
      );
    }
    try {
      const config = await loadAgentConfig(values.config);
      if (values.once) {
        const result = await runOnce(config);
        return result.ok ? ExitCode.Ok : ExitCode.Failure;
      }
      const agent = await startAgent(config);
      await new Promise<void>((resolve) => {
        const onSignal = () => {
          process.off("SIGTERM", onSignal);
          process.off("SIGINT", onSignal);
          // A second signal while stopping: leave at once.
          process.once("SIGTERM", () => process.exit(143));
          process.once("SIGINT", () => process.exit(130));
          void agent.stop().then(resolve);
        };
        process.on("SIGTERM", onSignal);
        process.on("SIGINT", onSignal);
      });
      return ExitCode.Ok;
    } catch (err) {
      if (err instanceof AgentConfigError || err instanceof StateFileError) {
        throw new CliError(err.message, ExitCode.Usage);
      }
      const e = err as NodeJS.ErrnoException;
      throw new CliError(
        `${e.code !== undefined ? `${e.code}: ` : ""}${e.message}`,
        ExitCode.Usage,
      );
    }
  },
};
