import { type Connection, requireProject } from "./connection.ts";
import type { Context } from "./context.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { formatTable, type OutputFormat } from "./output.ts";
import { parsePositive, type SecretRef } from "./refs.ts";

/**
 * What several command groups share: finding a secret's id from what the
 * user typed, and reading paged lists.
 */

/**
 * The id of a secret named by id or by `/path/name`. A path is looked up
 * with ListSecrets(path, name) in the current project: among live secrets,
 * or, with `deleted`, among those scheduled for deletion (for `restore`).
 * @throws CliError (exit 3) when there is no such secret.
 */
export async function resolveSecretId(
  conn: Connection,
  ref: SecretRef,
  options: {
    /** Look among the secrets scheduled for deletion instead of the live ones. */
    deleted?: boolean;
    /** The command has a --deleted flag, which the not-found message then suggests. */
    deletedFlag?: boolean;
  } = {},
): Promise<string> {
  if (ref.kind === "id") return ref.id;
  const projectId = await requireProject(conn);
  const res = await conn.secrets.listSecrets({
    region: conn.settings.region,
    projectId,
    path: ref.path,
    name: ref.name,
    ...(options.deleted && { scheduledForDeletion: true }),
    pageSize: 10,
  });
  const [first, ...others] = res.secrets;
  if (first === undefined && !options.deleted) {
    // Not live: say so when one is scheduled for deletion there, rather than
    // let the user believe it is gone for good.
    const scheduled = await conn.secrets.listSecrets({
      region: conn.settings.region,
      projectId,
      path: ref.path,
      name: ref.name,
      scheduledForDeletion: true,
      pageSize: 1,
    });
    if (scheduled.secrets.length > 0) {
      throw new CliError(
        `no secret ${ref.text} in project ${projectId}; one is scheduled for deletion${options.deletedFlag ? ": use --deleted" : ""}`,
        ExitCode.NotFound,
        `"coffer secret restore ${ref.text}" cancels its deletion`,
      );
    }
  }
  if (first === undefined) {
    throw new CliError(
      options.deleted
        ? `no secret ${ref.text} scheduled for deletion in project ${projectId}`
        : `no secret ${ref.text} in project ${projectId}`,
      ExitCode.NotFound,
      options.deleted
        ? '"coffer secret list --deleted" shows what can be restored'
        : `"coffer secret browse" shows what is there${conn.settings.region ? "" : "; use --region if it lives in another region"}`,
    );
  }
  if (others.length > 0) {
    throw new UsageError(
      `${res.secrets.length} secrets at ${ref.text} are scheduled for deletion; name one by id: ${res.secrets.map((s) => s.id).join(", ")}`,
    );
  }
  return first.id;
}

/** One page of a list RPC. */
export interface Page<T> {
  items: T[];
  total: bigint;
  /** The next page's token; "" on the last page. */
  next: string;
}

/** What {@link listPages} read. */
export interface Listing<T> {
  items: T[];
  total: bigint;
  /** The first page shown, and its size. */
  page: number;
  pageSize: number;
  all: boolean;
  /** The token of the page after this one; "" when this is the last (or with --all). */
  next: string;
}

const MAX_ALL = 100_000;

/**
 * Reads one page, or with `--all` every page (1,000 at a time).
 */
export async function listPages<T>(
  values: { page?: string; "page-size"?: string; all?: boolean; "page-token"?: string },
  fetch: (page: number, pageSize: number, pageToken: string) => Promise<Page<T>>,
): Promise<Listing<T>> {
  const page = parsePositive(values.page, "--page", 1_000_000);
  const size = parsePositive(values["page-size"], "--page-size", 1000);
  const token = values["page-token"];
  if (token !== undefined && (page !== undefined || values.all)) {
    throw new UsageError("--page-token continues a listing: leave out --page and --all");
  }
  if (values.all) {
    if (page !== undefined || size !== undefined) {
      throw new UsageError("--all reads every page: leave out --page and --page-size");
    }
    // Page tokens, not page numbers: an entry created or deleted while the
    // pages are read cannot make another one repeat or go missing.
    const items: T[] = [];
    let total = 0n;
    let next = "";
    do {
      const res = await fetch(0, 1000, next);
      items.push(...res.items);
      total = res.total;
      next = res.next;
    } while (next !== "" && items.length < MAX_ALL);
    return { items, total, page: 1, pageSize: 1000, all: true, next: "" };
  }
  if (token !== undefined) {
    const res = await fetch(0, size ?? 50, token);
    return {
      items: res.items,
      total: res.total,
      page: 0,
      pageSize: size ?? 50,
      all: false,
      next: res.next,
    };
  }
  const res = await fetch(page ?? 1, size ?? 50, "");
  return {
    items: res.items,
    total: res.total,
    page: page ?? 1,
    pageSize: size ?? 50,
    all: false,
    next: res.next,
  };
}

/** How a list command shows a listing. */
export interface ListingView<T> {
  /** `-o json`: the listing as the RPC's response message. */
  json(listing: Listing<T>): string;
  /** The table's headers, and each item's cells. */
  columns: string[];
  row(item: T): string[];
  /** What the items are, for "No …" and "Showing … of …" on stderr. */
  noun: string;
}

/** Prints a listing as JSON or as a table, then what was left out (see reportListing). */
export async function printListing<T>(
  ctx: Context,
  format: OutputFormat,
  listing: Listing<T>,
  view: ListingView<T>,
): Promise<undefined> {
  if (format === "json") {
    await ctx.io.stdout.write(view.json(listing));
    return undefined;
  }
  if (listing.items.length > 0) {
    await ctx.io.stdout.write(
      formatTable(
        view.columns,
        listing.items.map((i) => view.row(i)),
      ),
    );
  }
  await reportListing(ctx, listing, view.noun);
  return undefined;
}

/**
 * Tells people, on stderr, that a list is empty or that there is more than
 * one page (stdout keeps only the table).
 */
export async function reportListing(
  ctx: Context,
  listing: Listing<unknown>,
  noun: string,
): Promise<void> {
  const shown = listing.items.length;
  if (shown === 0 && listing.total === 0n) {
    await ctx.io.stderr.write(`No ${noun}.\n`);
    return;
  }
  if (listing.all || listing.next === "") return;
  if (listing.page === 0) {
    await ctx.io.stderr.write(
      `Showing ${shown} of ${listing.total} ${noun}; --page-token ${listing.next} for more, or --all.\n`,
    );
    return;
  }
  await ctx.io.stderr.write(
    `Showing ${shown} of ${listing.total} ${noun} (page ${listing.page}); --page ${listing.page + 1} or --page-token ${listing.next} for more, or --all.\n`,
  );
}
