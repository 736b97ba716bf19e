import type { Secret } from "@coffer/api";
import type { Connection } from "./connection.ts";

/**
 * Every live secret directly in `folder` (not below it), in name order, read
 * through every page: what `coffer import` matches names against and what
 * `coffer export` writes, and what `coffer run --path` reads.
 */
export async function secretsInFolder(
  conn: Connection,
  projectId: string,
  folder: string,
): Promise<Secret[]> {
  const found: Secret[] = [];
  let pageToken = "";
  do {
    const page = await conn.secrets.listSecrets({
      region: conn.settings.region,
      projectId,
      path: folder,
      pageSize: 1000,
      pageToken,
    });
    found.push(...page.secrets);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return found;
}
