import { type CommandSpec, commands, group } from "../args.ts";
import { CONNECTION_OPTIONS, OUTPUT_OPTION, PAGE_OPTIONS } from "../flags.ts";

/** What the commands of `coffer project` take; project-run.ts has what they do. */
export const PROJECT = {
  create: {
    summary: "create a project (needs a global admin token)",
    description: `Prints the new project's id, and how to make it the current project:
export COFFER_PROJECT=<id>, or --use to store it in the profile.`,
    args: [{ name: "NAME", help: "the project's name, 1-255 characters" }],
    options: {
      use: {
        type: "boolean",
        help: "make it the profile's project (coffer profile set --project)",
      },
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer project create demo",
      "export COFFER_PROJECT=$(coffer project create demo -o json | jq -r .project.id)",
    ],
  },
  list: {
    summary: "list the projects the token administers",
    options: { ...PAGE_OPTIONS, ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  },
  rename: {
    summary: "rename a project (needs admin on it)",
    description: "Project names are unique: a name another project holds is refused (exit 5).",
    args: [
      { name: "PROJECT", help: "the project's id or current name" },
      { name: "NAME", help: "its new name, 1-255 characters" },
    ],
    options: { ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
    examples: ["coffer project rename demo staging"],
  },
  delete: {
    summary: "delete a project (needs a global admin token)",
    description: `Removes the project and every grant on it; a token left without any grant is
revoked. Refused while any region holds a secret of the project, even one
scheduled for deletion. --force destroys those secrets for good first, in
every region (no restore window); the call is audited.`,
    args: [{ name: "PROJECT", help: "the project's id or name" }],
    options: {
      force: {
        type: "boolean",
        help: "destroy the project's secrets (every region, scheduled ones too) instead of refusing",
      },
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: ["coffer project delete demo", "coffer project delete demo --force"],
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer project ...`. */
export const projectGroup = group({
  name: "project",
  summary: "create, list, rename and delete projects",
  description: `Every secret belongs to a project; tokens are granted roles on projects.
Commands that work in a project take it from --project (an id or a name),
COFFER_PROJECT, or the profile.`,
  children: Object.values(commands(PROJECT, async () => (await import("./project-run.ts")).run)),
});
