import { parseArgs } from "node:util";
import { AgentStartError, runAgentCommand } from "./command.ts";

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
    return await runAgentCommand(values.config, values.once === true);
  } catch (err) {
    if (!(err instanceof AgentStartError)) throw err;
    process.stderr.write(`coffer-agent: ${err.message}\n`);
    return 2;
  }
}

// Exit explicitly: the HTTP/2 session of the client would keep the process alive a while.
process.exit(await main());
