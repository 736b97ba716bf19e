import { AgentStartError, runAgentCommand } from "@coffer/agent";
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
      return await runAgentCommand(values.config, values.once === true);
    } catch (err) {
      if (err instanceof AgentStartError) throw new CliError(err.message, ExitCode.Usage);
      throw err;
    }
  },
};
