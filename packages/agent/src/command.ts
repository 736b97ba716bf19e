import { runOnce, startAgent } from "./agent.ts";
import { AgentConfigError, loadAgentConfig } from "./config.ts";
import { StateFileError } from "./state.ts";

/**
 * Why the agent could not run: a config that cannot be used, an unreadable
 * state file, a file it cannot read or a health address in use. The
 * command exits 2 with this message.
 */
export class AgentStartError extends Error {
  override readonly name = "AgentStartError";
}

/**
 * What `coffer-agent` and `coffer agent` run: the agent on the config file,
 * rendering every file once (`once`, for init containers) or following
 * changes until SIGTERM or SIGINT (a second signal while stopping leaves at
 * once). Resolves 0 when fine, 1 when `once` left a file unrendered; throws
 * an {@link AgentStartError} for what makes the command exit 2.
 */
export async function runAgentCommand(configFile: string, once: boolean): Promise<0 | 1> {
  try {
    const config = await loadAgentConfig(configFile);
    if (once) return (await runOnce(config)).ok ? 0 : 1;
    const agent = await startAgent(config);
    await new Promise<void>((resolve) => {
      const onSignal = () => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        process.once("SIGTERM", () => process.exit(143));
        process.once("SIGINT", () => process.exit(130));
        void agent.stop().then(resolve);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    });
    return 0;
  } catch (err) {
    if (err instanceof AgentConfigError || err instanceof StateFileError) {
      throw new AgentStartError(err.message);
    }
    const e = err as NodeJS.ErrnoException;
    throw new AgentStartError(`${e.code !== undefined ? `${e.code}: ` : ""}${e.message}`);
  }
}
