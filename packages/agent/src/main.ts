import { parseArgs } from "node:util";
import { runOnce, startAgent } from "./agent.ts";
import { AgentConfigError, loadAgentConfig } from "./config.ts";
import { StateFileError } from "./state.ts";

const USAGE = `usage: coffer-agent --config agent.yaml [--once]

  -c, --config FILE   the agent's config (YAML; see packages/agent/README.md)
      --once          render every file once and exit: 0 when all were
                      rendered, 1 otherwise (init containers)
  -h, --help          this help
`;

/** Exit codes: 0 fine, 1 --once left a file unrendered, 2 bad usage, config or state file. */
async function main(): Promise<number> {
  let values: { config?: string; once?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: "string", short: "c" },
        once: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`coffer-agent: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.config === undefined) {
    process.stderr.write(`coffer-agent: --config is required\n${USAGE}`);
    return 2;
  }
  try {
    const config = await loadAgentConfig(values.config);
    if (values.once) {
      const result = await runOnce(config);
      return result.ok ? 0 : 1;
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
    return 0;
  } catch (err) {
    if (err instanceof AgentConfigError || err instanceof StateFileError) {
      process.stderr.write(`coffer-agent: ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(
      `coffer-agent: ${e.code !== undefined ? `${e.code}: ` : ""}${e.message}\n`,
    );
    return 2;
  }
}

// Exit explicitly: the HTTP/2 session of the client would keep the process alive a while.
process.exit(await main());
