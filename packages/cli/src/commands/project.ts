import { create } from "@bufbuild/protobuf";
import {
  CreateProjectResponseSchema,
  DeleteProjectResponseSchema,
  ListProjectsResponseSchema,
  UpdateProjectResponseSchema,
} from "@coffer/api";
import { command, group } from "../args.ts";
import { CONNECTION_OPTIONS, connect, OUTPUT_OPTION, projectIdFor } from "../connection.ts";
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
    const listing = await listPages(values, async (page, pageSize, pageToken) => {
      const res = await conn.admin.listProjects({ page, pageSize, pageToken });
      return { items: res.projects, total: res.totalCount, next: res.nextPageToken };
    });
    return printListing(ctx, format, listing, {
      json: (l) =>
        jsonText(
          ListProjectsResponseSchema,
          create(ListProjectsResponseSchema, {
            projects: l.items,
            totalCount: l.total,
            nextPageToken: l.next,
          }),
        ),
      columns: ["ID", "NAME", "CREATED"],
      row: (p) => [p.id, p.name, formatTime(p.createdAt)],
      noun: "projects",
    });
  },
});

const renameCommand = command({
  name: "rename",
  summary: "rename a project (needs admin on it)",
  description: "Project names are unique: a name another project holds is refused (exit 5).",
  args: [
    { name: "PROJECT", help: "the project's id or current name" },
    { name: "NAME", help: "its new name, 1-255 characters" },
  ],
  options: { ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  examples: ["coffer project rename demo staging"],
  async run(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const projectId = await projectIdFor(conn, args[0] as string);
    const res = await conn.admin.updateProject({ projectId, name: args[1] as string });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(UpdateProjectResponseSchema, res));
      return undefined;
    }
    await ctx.io.stdout.write(`Renamed project ${projectId} to ${res.project?.name ?? ""}.\n`);
    return undefined;
  },
});

const deleteCommand = command({
  name: "delete",
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
  async run(ctx, { values, args }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const projectId = await projectIdFor(conn, args[0] as string);
    const res = await conn.admin.deleteProject({ projectId, force: values.force === true });
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(DeleteProjectResponseSchema, res));
      return undefined;
    }
    const destroyed =
      res.destroyedSecrets > 0n ? `; ${res.destroyedSecrets} secrets destroyed for good` : "";
    await ctx.io.stdout.write(
      `Deleted project ${res.project?.name ?? ""} (id ${projectId})${destroyed}; ${res.updatedTokens} tokens lost their grants on it.\n`,
    );
    return undefined;
  },
});

/** `coffer project ...`. */
export const projectGroup = group({
  name: "project",
  summary: "create, list, rename and delete projects",
  description: `Every secret belongs to a project; tokens are granted roles on projects.
Commands that work in a project take it from --project (an id or a name),
COFFER_PROJECT, or the profile.`,
  children: [createCommand, listCommand, renameCommand, deleteCommand],
});
