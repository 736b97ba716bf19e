import { listAuditEvents as queryAuditEvents } from "../../db/audit.ts";
import type { AuditRow } from "../../db/schema.ts";
import { resolveAndNoteHome } from "../addressing.ts";
import { noteFacts } from "../audit.ts";
import { requireAdmin, requirePrincipal, requireProjectAdmin } from "../authz.ts";
import type { Caller } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { invalid, permissionDenied } from "../errors.ts";
import { type ListPage, openPage } from "../paging.ts";
import { validateText, validateUuid } from "../validation.ts";
import { validateTime } from "./time.ts";

/** The outcomes an event can hold: gRPC's canonical code names. */
export const OUTCOMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** Longest method filter, in characters: far above any real method name. */
const MAX_METHOD_LENGTH = 512;

export interface ListAuditEventsInput {
  /** "" for the default region. */
  region: string;
  /** Each filter: "" (or undefined for times) for any. */
  projectId: string;
  secretId: string;
  tokenId: string;
  method: string;
  outcome: string;
  /** Inclusive. */
  startTime?: Date;
  /** Exclusive. */
  endTime?: Date;
  page: number;
  pageSize: number;
  pageToken?: string;
}

/**
 * One region's audit events, newest first. A global admin may list any
 * events; a project admin must filter by a project it administers (else
 * PERMISSION_DENIED), and a project it cannot see is NOT_FOUND. The event of
 * this call itself goes to the home region, like every admin call's.
 */
export async function listAuditEvents(
  domain: DomainDeps,
  caller: Caller,
  input: ListAuditEventsInput,
): Promise<{ events: (AuditRow & { region: string })[] } & ListPage> {
  resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const principal = requirePrincipal(caller.principal);
  const region = domain.regions.resolve(input.region);
  const projectId =
    input.projectId === "" ? undefined : validateUuid(input.projectId, "project_id");
  const secretId = input.secretId === "" ? undefined : validateUuid(input.secretId, "secret_id");
  const tokenId = input.tokenId === "" ? undefined : validateUuid(input.tokenId, "token_id");
  if (input.method.length > MAX_METHOD_LENGTH) {
    throw invalid("method", `must be at most ${MAX_METHOD_LENGTH} characters`);
  }
  validateText(input.method, "method");
  if (input.outcome !== "" && !(OUTCOMES as readonly string[]).includes(input.outcome)) {
    throw invalid(
      "outcome",
      `must be a status code name such as OK or PERMISSION_DENIED (one of ${OUTCOMES.join(", ")})`,
    );
  }
  for (const [field, at] of [
    ["start_time", input.startTime],
    ["end_time", input.endTime],
  ] as const) {
    if (at !== undefined) validateTime(field, at);
  }
  if (
    input.startTime !== undefined &&
    input.endTime !== undefined &&
    input.endTime.getTime() <= input.startTime.getTime()
  ) {
    throw invalid("end_time", "must be after start_time");
  }
  const page = openPage(
    input,
    "audit",
    {
      region: region.name,
      projectId: projectId ?? "",
      secretId: secretId ?? "",
      tokenId: tokenId ?? "",
      method: input.method,
      outcome: input.outcome,
      start: input.startTime?.toISOString() ?? "",
      end: input.endTime?.toISOString() ?? "",
    },
    ["ts", "uuid"],
  );
  if (projectId === undefined) {
    if (administered !== "all") {
      throw permissionDenied(
        "set project_id to a project this token administers: only a global admin may list every project's events",
      );
    }
  } else {
    noteFacts(caller.audit, { projectId });
    requireProjectAdmin(principal, administered, projectId);
  }
  const found = await queryAuditEvents(
    region.db,
    {
      ...(projectId !== undefined && { projectId }),
      ...(secretId !== undefined && { secretId }),
      ...(tokenId !== undefined && { tokenId }),
      ...(input.method !== "" && { method: input.method }),
      ...(input.outcome !== "" && { outcome: input.outcome }),
      ...(input.startTime !== undefined && { start: input.startTime }),
      ...(input.endTime !== undefined && { end: input.endTime }),
    },
    page,
  );
  return {
    events: found.rows.map((r) => ({ ...r, region: region.name })),
    ...page.listPage(found),
  };
}
