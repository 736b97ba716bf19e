import { type CommandSpec, commands, group } from "../args.ts";
import { CONNECTION_OPTIONS, OUTPUT_OPTION } from "../flags.ts";

/** What the commands of `coffer region` take; region-run.ts has what they do. */
export const REGION = {
  list: {
    summary: "list the regions the server serves, the default first",
    description: `Any valid token may list them. A secret lives in the region it was created
in, and cannot be moved: pick one with --region, COFFER_REGION or the
profile (default: the server's default region).`,
    options: { ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
    examples: ["coffer region list", "coffer region list -o json | jq -r .defaultRegion"],
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer region ...`. */
export const regionGroup = group({
  name: "region",
  summary: "list the server's regions",
  description: "Each region keeps its secrets in its own database.",
  children: Object.values(commands(REGION, async () => (await import("./region-run.ts")).run)),
});
