/**
 * Every page of a list RPC, through its page tokens: each item that exists
 * for the whole walk is seen exactly once, even while others are created or
 * deleted (page numbers cannot promise that).
 *
 * ```ts
 * for await (const page of allPages(client.listSecrets, { projectId })) {
 *   for (const secret of page.secrets) console.log(secret.name);
 * }
 * ```
 *
 * The request must not set `page` (a page number and a page token together
 * are refused); keep its filters and order the same throughout, as the
 * token is bound to them.
 */
export async function* allPages<
  Req extends { pageToken?: string },
  Res extends { nextPageToken: string },
>(list: (request: Req) => Promise<Res>, request: Req): AsyncGenerator<Res, void, undefined> {
  let pageToken = "";
  do {
    const page = await list({ ...request, pageToken });
    yield page;
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
}
