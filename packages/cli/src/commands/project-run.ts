import { create } from "@bufbuild/protobuf";
import {
  CreateProjectResponseSchema,
  DeleteProjectResponseSchema,
  ListProjectsResponseSchema,
  UpdateProjectResponseSchema,
} from "@coffer/api";
import type { Runs } from "../args.ts";
import { connect, projectIdFor } from "../connection.ts";
import { formatTime, jsonText, parseOutputFormat } from "../output.ts";
import { listPages, printListing } from "../resolve.ts";
import { updateProfile } from "./profile-run.ts";
import type { PROJECT } from "./project.ts";

/** What the commands of `coffer project` (project.ts) do. */
export const run: Runs<typeof PROJECT> = {
  async create(ctx, { values, args }) {
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

  async list(ctx, { values }) {
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

  async rename(ctx, { values, args }) {
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

  async delete(ctx, { values, args }) {
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
};
