import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  type AuditEvent,
  AuthService,
  type Project,
  SecretService,
  type Token,
} from "@coffer/api";
import { skipToken, useQuery } from "@connectrpc/connect-query";
import { Link } from "@tanstack/react-router";
import { type FormEvent, type ReactNode, useEffect, useId, useState } from "react";
import { DataTable } from "../ui/data-table.tsx";
import { SelectField } from "../ui/fields.tsx";
import { fullPath } from "../ui/format.ts";
import { Pager } from "../ui/pager.tsx";
import { QueryState } from "../ui/problem.tsx";
import { Time } from "../ui/time.tsx";
import type { AuditSearch } from "./audit-search.ts";
import { bindingLabel, EXCHANGE_TOKEN, IdentityFacts, useBindingNames } from "./identity.tsx";

const PAGE_SIZE = 50;

/** Every method the audit trail can name: the three services' methods, by short name. */
export const METHODS: readonly { name: string; label: string }[] = [
  ...SecretService.methods,
  ...AdminService.methods,
  ...AuthService.methods,
]
  .map((m) => ({ name: `${m.parent.typeName}/${m.name}`, label: m.name }))
  .sort((a, b) => a.label.localeCompare(b.label));

/** Outcomes as the audit trail names them (gRPC status codes), the common ones first. */
export const OUTCOMES: readonly { code: string; label: string }[] = [
  { code: "OK", label: "OK" },
  { code: "PERMISSION_DENIED", label: "Permission denied" },
  { code: "UNAUTHENTICATED", label: "Unauthenticated" },
  { code: "NOT_FOUND", label: "Not found" },
  { code: "INVALID_ARGUMENT", label: "Invalid argument" },
  { code: "FAILED_PRECONDITION", label: "Failed precondition" },
  { code: "ALREADY_EXISTS", label: "Already exists" },
  { code: "ABORTED", label: "Aborted" },
  { code: "RESOURCE_EXHAUSTED", label: "Resource exhausted" },
  { code: "DEADLINE_EXCEEDED", label: "Deadline exceeded" },
  { code: "UNAVAILABLE", label: "Unavailable" },
  { code: "INTERNAL", label: "Internal" },
];

const outcomeLabel = (code: string) => OUTCOMES.find((o) => o.code === code)?.label ?? code;
const methodLabel = (name: string) => name.slice(name.lastIndexOf("/") + 1);

/** A local date and time from a datetime-local field, as a Timestamp; undefined when unset or bad. */
function localTime(value: string | undefined) {
  if (value === undefined) return undefined;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? undefined : timestampFromDate(at);
}

/**
 * Screen 8's content: the audit events of the project in this region
 * (ListAuditEvents), or of one secret, newest first, filtered by token,
 * method, outcome and time. The filters are the URL's (`search`); changing
 * one calls `onSearch` with the new values.
 */
export function AuditPanel({
  projectId,
  region,
  search,
  onSearch,
  globalAdmin = false,
  callerToken,
  projects = [],
}: {
  projectId: string;
  region: string;
  search: AuditSearch;
  onSearch: (changes: Partial<AuditSearch>) => void;
  /** A global admin names every token (global admins' too), not only the project's. */
  globalAdmin?: boolean;
  /** The signed-in token, named even when no grant of it is on the project. */
  callerToken?: Token | undefined;
  /** Names for the events' projects, when a global admin lists every project's. */
  projects?: readonly Project[];
}) {
  const page = search.page ?? 1;
  const everyProject = globalAdmin && search.all === true;
  const startTime = localTime(search.from);
  const endTime = localTime(search.to);
  const events = useQuery(AdminService.method.listAuditEvents, {
    region,
    projectId: everyProject ? "" : projectId,
    secretId: search.secret ?? "",
    tokenId: search.token ?? "",
    method: search.method ?? "",
    outcome: search.outcome ?? "",
    ...(startTime && { startTime }),
    ...(endTime && { endTime }),
    page,
    pageSize: PAGE_SIZE,
  });
  // Names for the token ids the events carry: the project's tokens (every
  // token, for a global admin), revoked ones too, and the caller's own.
  const tokens = useQuery(AdminService.method.listTokens, {
    projectId: globalAdmin ? "" : projectId,
    includeInactive: true,
    pageSize: 1000,
  });
  const tokenNames = new Map(
    [...(callerToken ? [callerToken] : []), ...(tokens.data?.tokens ?? [])].map((t) => [t.id, t]),
  );
  const secret = useQuery(
    SecretService.method.getSecret,
    search.secret === undefined ? skipToken : { region, secretId: search.secret },
  );
  const list = events.data?.events ?? [];
  const bindingNames = useBindingNames(list.some((e) => e.bindingId !== ""));
  const projectNames = new Map(projects.map((p) => [p.id, p.name]));
  // Columns only when a listed event fills them: most pages have no detail,
  // and a page of sign-ins names no secret.
  const detailed = list.some(hasDetail);
  const secrets = !detailed || list.some((e) => e.secretId !== "");
  const total = Number(events.data?.totalCount ?? 0);
  const filtered =
    search.token !== undefined ||
    search.method !== undefined ||
    search.outcome !== undefined ||
    search.from !== undefined ||
    search.to !== undefined;

  return (
    <>
      {search.secret !== undefined && (
        <div className="notice notice-info audit-scope">
          Events of the secret{" "}
          <strong className="mono">
            {secret.data?.secret
              ? fullPath(secret.data.secret.path, secret.data.secret.name)
              : search.secret}
          </strong>
          .{" "}
          <Link
            to="/p/$projectId/$region/secrets/$secretId/overview"
            params={{ projectId, region, secretId: search.secret }}
          >
            Open the secret
          </Link>{" "}
          ·{" "}
          <button
            type="button"
            className="btn-link"
            onClick={() => onSearch({ secret: undefined })}
          >
            Show the whole project's events
          </button>
        </div>
      )}
      {everyProject && (
        <div className="notice notice-info audit-scope">
          Events of every project in region <strong>{region}</strong>, and of calls that belong to
          no project, such as refused sign-ins.{" "}
          <button type="button" className="btn-link" onClick={() => onSearch({ all: undefined })}>
            Show this project's events only
          </button>
        </div>
      )}
      {search.method === EXCHANGE_TOKEN && !globalAdmin && (
        <p className="notice notice-info">
          Refused sign-ins belong to no project: only a global admin sees those.
        </p>
      )}
      <Filters
        search={search}
        globalAdmin={globalAdmin}
        tokens={[...tokenNames.values()].map((t) => ({ id: t.id, label: tokenLabel(t) }))}
        onSearch={onSearch}
      />
      <QueryState query={events} what="audit events" />
      {events.data && list.length === 0 && (
        <div className="empty">
          <p className="empty-title">
            {filtered ? "No event matches these filters." : "No audit event here yet."}
          </p>
          <p className="muted">
            {filtered
              ? "Change or clear the filters to see more."
              : `Every call on this project's secrets in region ${region} is recorded here, allowed or refused.`}
          </p>
        </div>
      )}
      {list.length > 0 && (
        <DataTable
          caption="Audit events, newest first"
          columns={[
            "Time",
            "Method",
            "Outcome",
            everyProject && "Project",
            "Token",
            secrets && "Secret",
            secrets && "Revision",
            detailed && "Detail",
            "From",
            "Request id",
          ]}
        >
          {list.map((e) => {
            const t = tokenNames.get(e.tokenId);
            const target = tokenNames.get(e.targetTokenId);
            // An issued token's name repeats the binding and subject beside it: its prefix says the rest.
            const targetName = target && `${target.prefix}…`;
            return (
              <EventRow
                key={e.id}
                event={e}
                tokenName={t && tokenLabel(t)}
                project={everyProject ? (projectNames.get(e.projectId) ?? e.projectId) : undefined}
                detail={
                  detailed ? (
                    <EventDetail
                      event={e}
                      targetName={targetName}
                      bindingNames={bindingNames}
                      onSearch={onSearch}
                    />
                  ) : undefined
                }
                secrets={secrets}
                onSearch={onSearch}
              />
            );
          })}
        </DataTable>
      )}
      <Pager
        page={page}
        pageSize={PAGE_SIZE}
        total={total}
        label="events"
        onPage={(p) => onSearch({ page: p })}
      />
    </>
  );
}

function tokenLabel(t: { name: string; prefix: string }): string {
  return `${t.name} (${t.prefix}…)`;
}

/**
 * Whether an event has more to say than the columns: a sign-in with a JWT.
 * (Token changes keep to the usual columns, so that the everyday trail
 * stays as narrow as it was.)
 */
function hasDetail(e: AuditEvent): boolean {
  return (
    e.method === EXCHANGE_TOKEN ||
    e.issuer !== "" ||
    e.subject !== "" ||
    e.bindingId !== "" ||
    e.reason !== ""
  );
}

/**
 * A sign-in's detail: who signed in (the subject and issuer the JWT
 * claimed, the binding that matched) and the token issued, a button that
 * shows its calls; or why it was refused.
 */
function EventDetail({
  event: e,
  targetName,
  bindingNames,
  onSearch,
}: {
  event: AuditEvent;
  targetName: string | undefined;
  bindingNames: ReadonlyMap<string, string>;
  onSearch: (changes: Partial<AuditSearch>) => void;
}) {
  if (!hasDetail(e)) return <span className="muted">—</span>;
  return (
    <IdentityFacts
      facts={[
        ...(e.reason !== "" ? [["Reason", e.reason] as const] : []),
        ...(e.subject !== "" ? [["Subject", e.subject, true] as const] : []),
        ...(e.issuer !== "" ? [["Issuer", e.issuer, true] as const] : []),
        ...(e.bindingId !== ""
          ? [["Binding", bindingLabel(e.bindingId, bindingNames)] as const]
          : []),
        ...(e.method === EXCHANGE_TOKEN && e.targetTokenId !== ""
          ? [
              [
                "Issued",
                <button
                  key="target"
                  type="button"
                  className="btn-link"
                  onClick={() => onSearch({ token: e.targetTokenId })}
                >
                  {targetName ?? `${e.targetTokenId.slice(0, 8)}…`}
                  <span className="visually-hidden">: show this token's calls only</span>
                </button>,
              ] as const,
            ]
          : []),
      ]}
    />
  );
}

function EventRow({
  event: e,
  tokenName,
  project,
  detail,
  secrets,
  onSearch,
}: {
  event: AuditEvent;
  tokenName: string | undefined;
  /** The project's name, when the list spans every project ("" for none). */
  project: string | undefined;
  /** The Detail cell's content, when the list has that column. */
  detail: ReactNode;
  /** Whether the list has the Secret and Revision columns. */
  secrets: boolean;
  onSearch: (changes: Partial<AuditSearch>) => void;
}) {
  const ok = e.outcome === "OK";
  const secretLabel = e.secretName !== "" ? fullPath(e.secretPath || "/", e.secretName) : "";
  let token: string;
  if (e.tokenId !== "") token = tokenName ?? `${e.tokenId.slice(0, 8)}…`;
  else if (e.tokenPrefix !== "") token = `no valid token (${e.tokenPrefix}…)`;
  // ExchangeToken needs no token: the caller presents its platform's JWT.
  else if (e.method === EXCHANGE_TOKEN) token = "a JWT";
  else token = "no token";
  return (
    <tr>
      <td>
        <Time at={e.time} />
      </td>
      <td className="audit-method" title={e.method}>
        {methodLabel(e.method)}
        {e.count > 1 && <span className="audit-count">×{e.count}</span>}
      </td>
      <td>
        <span className={ok ? "badge badge-ok" : "badge badge-danger"}>
          {outcomeLabel(e.outcome)}
        </span>
      </td>
      {project !== undefined && <td>{project || <span className="muted">none</span>}</td>}
      <td>
        {e.tokenId !== "" ? (
          <button type="button" className="btn-link" onClick={() => onSearch({ token: e.tokenId })}>
            {token}
            <span className="visually-hidden">: show this token's calls only</span>
          </button>
        ) : (
          <span className="muted">{token}</span>
        )}
      </td>
      {secrets && (
        <td>
          {e.secretId !== "" ? (
            <button
              type="button"
              className="btn-link mono"
              onClick={() => onSearch({ secret: e.secretId })}
            >
              {secretLabel || `${e.secretId.slice(0, 8)}…`}
              <span className="visually-hidden">: show this secret's events only</span>
            </button>
          ) : (
            <span className="muted">—</span>
          )}
        </td>
      )}
      {secrets && <td>{e.revision > 0 ? e.revision : "—"}</td>}
      {detail !== undefined && <td className="audit-detail">{detail}</td>}
      <td className="mono">{e.peer || "—"}</td>
      <td className="audit-request">{e.requestId}</td>
    </tr>
  );
}

function Filters({
  search,
  globalAdmin,
  tokens,
  onSearch,
}: {
  search: AuditSearch;
  globalAdmin: boolean;
  tokens: readonly { id: string; label: string }[];
  onSearch: (changes: Partial<AuditSearch>) => void;
}) {
  const id = useId();
  const [from, setFrom] = useState(search.from ?? "");
  const [to, setTo] = useState(search.to ?? "");
  useEffect(() => setFrom(search.from ?? ""), [search.from]);
  useEffect(() => setTo(search.to ?? ""), [search.to]);
  const tokenChoices =
    search.token !== undefined && !tokens.some((t) => t.id === search.token)
      ? [{ id: search.token, label: search.token }, ...tokens]
      : tokens;
  const badRange = from !== "" && to !== "" && new Date(from) > new Date(to);

  function apply(e: FormEvent) {
    e.preventDefault();
    if (badRange) return;
    onSearch({ from: from || undefined, to: to || undefined, page: undefined });
  }

  return (
    <form className="filters audit-filters" onSubmit={apply} aria-label="Filters">
      <SelectField
        id={`${id}-token`}
        label="Token"
        value={search.token ?? ""}
        onChange={(token) => onSearch({ token: token || undefined, page: undefined })}
        any="Any token"
        options={tokenChoices.map((t) => [t.id, t.label] as const)}
      />
      <SelectField
        id={`${id}-method`}
        label="Method"
        value={search.method ?? ""}
        onChange={(method) => onSearch({ method: method || undefined, page: undefined })}
        any="Any method"
        options={METHODS.map((m) => [m.name, m.label] as const)}
      />
      <SelectField
        id={`${id}-outcome`}
        label="Outcome"
        value={search.outcome ?? ""}
        onChange={(outcome) => onSearch({ outcome: outcome || undefined, page: undefined })}
        any="Any outcome"
        options={OUTCOMES.map((o) => [o.code, o.label] as const)}
      />
      {globalAdmin && (
        <SelectField
          id={`${id}-scope`}
          label="Projects"
          value={search.all ? "all" : ""}
          onChange={(scope) => onSearch({ all: scope === "all" || undefined, page: undefined })}
          any="This project"
          options={[["all", "Every project"]]}
        />
      )}
      <div className="field">
        <label htmlFor={`${id}-from`}>From</label>
        <input
          id={`${id}-from`}
          type="datetime-local"
          value={from}
          onChange={(e) => setFrom(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-to`}>To</label>
        <input
          id={`${id}-to`}
          type="datetime-local"
          value={to}
          onChange={(e) => setTo(e.target.value)}
          aria-invalid={badRange}
          aria-describedby={badRange ? `${id}-range-error` : undefined}
        />
        {badRange && (
          <p id={`${id}-range-error`} className="field-error">
            Must be after From.
          </p>
        )}
      </div>
      <div className="filters-actions">
        <button type="submit" className="btn btn-primary" disabled={badRange}>
          Apply times
        </button>
        <button
          type="button"
          className="btn btn-ghost"
          onClick={() =>
            onSearch({
              all: undefined,
              token: undefined,
              method: undefined,
              outcome: undefined,
              from: undefined,
              to: undefined,
              page: undefined,
            })
          }
        >
          Clear filters
        </button>
      </div>
    </form>
  );
}
