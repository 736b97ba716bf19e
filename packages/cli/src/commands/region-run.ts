import { ListRegionsResponseSchema } from "@coffer/api";
import type { Runs } from "../args.ts";
import { connect } from "../connection.ts";
import { formatTable, jsonText, parseOutputFormat } from "../output.ts";
import type { REGION } from "./region.ts";

/** What the commands of `coffer region` (region.ts) do. */
export const run: Runs<typeof REGION> = {
  async list(ctx, { values }) {
    const format = parseOutputFormat(values.output);
    const conn = await connect(ctx, values);
    const res = await conn.secrets.listRegions({});
    if (format === "json") {
      await ctx.io.stdout.write(jsonText(ListRegionsResponseSchema, res));
      return undefined;
    }
    await ctx.io.stdout.write(
      formatTable(
        ["REGION", "DEFAULT"],
        res.regions.map((r) => [r, r === res.defaultRegion ? "yes" : ""]),
      ),
    );
    return undefined;
  },
};
