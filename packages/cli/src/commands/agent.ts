import { command } from "../args.ts";
import { CliError, ExitCode } from "../errors.ts";

/**
 * `coffer agent`: the sidecar (@coffer/agent) in this process, as
 * `coffer-agent` runs it, with the same exit codes. Imported only here.
 */
export const agentCommand = command({
  name: "agent",
  summary: "run the sidecar agent: keep local files equal to secrets",
  description: `Runs the agent of @coffer/agent, as the coffer-agent command does: it
follows WatchSecrets and keeps each file of its config equal to the newest
enabled version of its secret, until SIGTERM or SIGINT. --once renders every
file once and exits (init containers). The config (YAML) is described in
packages/agent/README.md. Logs are JSON lines on stdout.

Exit codes: 0 stopped by a signal, or --once rendered every file; 1 --once
left a file unrendered; 2 bad config or state file.`,
  options: {
    config: {
      type: "string",
      short: "c",
      value: "FILE",
      help: "the agent's config (YAML), required",
    },
    once: { type: "boolean", help: "render every file once and exit" },
  },
  examples: ["coffer agent --config agent.yaml", "coffer agent --config agent.yaml --once"],
  async run(_ctx, { values }) {
    if (values.config === undefined) {
      throw new CliError(
        "--config is required: the agent's YAML config",
        ExitCode.Usage,
        'see "coffer agent --help"',
      );
    }
    const { AgentConfigError, StateFileError, loadAgentConfig, runOnce, startAgent } = await import(
      "@coffer/agent"
    );
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
});
