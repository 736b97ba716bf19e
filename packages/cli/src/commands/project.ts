import { create } from "@bufbuild/protobuf";
import { CreateProjectResponseSchema, ListProjectsResponseSchema } from "@coffer/api";
import { command, group } from "../args.ts";
import { CONNECTION_OPTIONS, connect, OUTPUT_OPTION } from "../connection.ts";
import { formatTime, jsonText, parseOutputFormat } from "../output.ts";
import { listPages, PAGE_OPTIONS, printListing } from "../resolve.ts";
import { updateProfile } from "./profile.ts";

const createCommand = command({
  name: "create",
  summary: "create a project (needs a global admin token)",
  description: `Prints the new project's id, and how to make it the current project:
export COFFER_PROJECT=<id>, or --use to store it in the profile.`,
  args: [{ name: "NAME", help: "the project's name, 1-255 characters" }],
  options: {
    use: { type: "boolean", help: "make it the profile's project (coffer profile set --project)" },
    ...OUTPUT_OPTION,
    ...CONNECTION_OPTIONS,
  },
  examples: [
    "coffer project create demo",
    "export COFFER_PROJECT=$(coffer project create demo -o json | jq -r .project.id)",
  ],
  async run(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const res = await conn.admin.createProject({ name: args[0] as string });
    const id = res.project?.id ?? "";
    if (values.use) {
      await updateProfile(ctx, conn.settings.profileFile, conn.settings.profileName, {
        project: id,
      });
    }
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(CreateProjectResponseSchema, res));
      return undefined;
    }
    const next = values.use
      ? `It is now the project of profile "${conn.settings.profileName}" (${conn.settings.profileFile}).\n`
      : `Use it:\n  export COFFER_PROJECT=${id}\n`;
    await ctx.io.stdout.write(`Created project ${args[0]} (id ${id}).\n${next}`);
    return undefined;
  },
});

const listCommand = command({
  name: "list",
  summary: "list the projects the token administers",
  options: { ...PAGE_OPTIONS, ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  async run(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const listing = await listPages(values, async (page, pageSize) => {
      const res = await conn.admin.listProjects({ page, pageSize });
      return { items: res.projects, total: res.totalCount };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListProjectsResponseSchema,
          create(ListProjectsResponseSchema, {
            projects: l.items,
            totalCount: l.total,
          }),
        ),
      columns: ["ID", "NAME", "CREATED"],
      row: (p) => [p.id, p.name, formatTime(p.createdAt)],
      noun: "projects",
    });
  },
});

/** `coffer project ...`. */
export const projectGroup = group({
  name: "project",
  summary: "create and list projects",
  description: `Every secret belongs to a project; tokens are granted roles on projects.
Commands that work in a project take it from --project (an id or a name),
COFFER_PROJECT, or the profile.`,
  children: [createCommand, listCommand],
});
