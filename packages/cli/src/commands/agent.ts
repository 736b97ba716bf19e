import { type CommandSpec, commands } from "../args.ts";
import { loadWithPackage } from "../errors.ts";

/** What `coffer agent` takes; agent-run.ts has what it does. */
export const AGENT = {
  agent: {
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
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer agent`. */
export const agentCommand = commands(AGENT, () =>
  loadWithPackage("@coffer/agent", async () => (await import("./agent-run.ts")).run),
).agent;
