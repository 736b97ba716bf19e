import { ListSecretsOrderBy, SecretService, SecretStatus } from "@coffer/api";
import { useQuery } from "@connectrpc/connect-query";
import { Link, useNavigate } from "@tanstack/react-router";
import { type FormEvent, useEffect, useState } from "react";
import type { SecretsSearch, SecretsSort } from "../search.ts";
import { EmptySecrets } from "../ui/empty-secrets.tsx";
import { formatTime, isoTime, SECRET_TYPES, typeFromKey, typeLabel } from "../ui/format.ts";
import { Pager } from "../ui/pager.tsx";
import { QueryState } from "../ui/problem.tsx";
import { Tags } from "../ui/tags.tsx";

const PAGE_SIZE = 50;

const ORDER: Record<SecretsSort, ListSecretsOrderBy> = {
  name_asc: ListSecretsOrderBy.NAME_ASC,
  name_desc: ListSecretsOrderBy.NAME_DESC,
  created_desc: ListSecretsOrderBy.CREATED_AT_DESC,
  created_asc: ListSecretsOrderBy.CREATED_AT_ASC,
  updated_desc: ListSecretsOrderBy.UPDATED_AT_DESC,
  updated_asc: ListSecretsOrderBy.UPDATED_AT_ASC,
};

const SORT_LABELS: Record<SecretsSort, string> = {
  name_asc: "Name, A to Z",
  name_desc: "Name, Z to A",
  created_desc: "Newest first",
  created_asc: "Oldest first",
  updated_desc: "Recently updated",
  updated_asc: "Least recently updated",
};

const bool = (v: "yes" | "no" | undefined) => (v === undefined ? undefined : v === "yes");

/** The flat view: every secret under a folder (ListSecrets), filtered, sorted, paged. */
export function SecretsList({
  projectId,
  region,
  search,
  writer,
}: {
  projectId: string;
  region: string;
  search: SecretsSearch;
  writer: boolean;
}) {
  const navigate = useNavigate({ from: "/p/$projectId/$region/secrets" });
  const page = search.page ?? 1;
  const path = search.path ?? "/";
  const list = useQuery(SecretService.method.listSecrets, {
    region,
    projectId,
    name: search.name,
    pathPrefix: path === "/" ? undefined : path,
    tags: search.tag === undefined ? [] : [search.tag],
    type: typeFromKey(search.type),
    protected: bool(search.protected),
    ephemeral: bool(search.ephemeral),
    scheduledForDeletion: search.deleted === true ? true : undefined,
    orderBy: ORDER[search.sort ?? "name_asc"],
    page,
    pageSize: PAGE_SIZE,
  });
  const tags = useQuery(SecretService.method.listTags, { region, projectId, pageSize: 1000 });
  const secrets = list.data?.secrets ?? [];
  const total = Number(list.data?.totalCount ?? 0);
  const filtered =
    search.name !== undefined ||
    search.tag !== undefined ||
    search.type !== undefined ||
    search.protected !== undefined ||
    search.ephemeral !== undefined ||
    search.deleted === true ||
    path !== "/";

  const set = (changes: Partial<SecretsSearch>) =>
    navigate({ search: (prev) => ({ ...prev, ...changes, page: undefined }) });

  return (
    <section aria-label="List">
      <Filters search={search} tags={tags.data?.tags ?? []} onChange={set} />
      <QueryState query={list} what="secrets" />
      {list.data && secrets.length === 0 && (
        <EmptySecrets
          projectId={projectId}
          region={region}
          path={path}
          writer={writer}
          filtered={filtered}
        />
      )}
      {secrets.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <caption className="visually-hidden">Secrets</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Path</th>
                <th scope="col">Type</th>
                <th scope="col">Tags</th>
                <th scope="col">Versions</th>
                <th scope="col">Created</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {secrets.map((s) => (
                <tr key={s.id}>
                  <td>
                    <Link
                      to="/p/$projectId/$region/secrets/$secretId/overview"
                      params={{ projectId, region, secretId: s.id }}
                      className="row-link"
                    >
                      <span className="icon-key" aria-hidden="true" />
                      {s.name}
                    </Link>
                    {s.protected && <span className="badge badge-info">Protected</span>}
                    {s.ephemeralPolicy && <span className="badge">Ephemeral</span>}
                    {s.status === SecretStatus.LOCKED && (
                      <span className="badge badge-danger">Scheduled for deletion</span>
                    )}
                  </td>
                  <td className="mono">{s.path}</td>
                  <td>{typeLabel(s.type)}</td>
                  <td>
                    <Tags tags={s.tags} />
                  </td>
                  <td>{s.versionCount}</td>
                  <td>
                    <time dateTime={isoTime(s.createdAt)}>{formatTime(s.createdAt)}</time>
                  </td>
                  <td>
                    <time dateTime={isoTime(s.updatedAt)}>{formatTime(s.updatedAt)}</time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        page={page}
        pageSize={PAGE_SIZE}
        total={total}
        label="secrets"
        onPage={(p) => navigate({ search: (prev) => ({ ...prev, page: p }) })}
      />
    </section>
  );
}

function Filters({
  search,
  tags,
  onChange,
}: {
  search: SecretsSearch;
  tags: readonly string[];
  onChange: (changes: Partial<SecretsSearch>) => void;
}) {
  const [name, setName] = useState(search.name ?? "");
  const [tag, setTag] = useState(search.tag ?? "");
  const [folder, setFolder] = useState(search.path ?? "/");
  useEffect(() => setName(search.name ?? ""), [search.name]);
  useEffect(() => setTag(search.tag ?? ""), [search.tag]);
  useEffect(() => setFolder(search.path ?? "/"), [search.path]);

  function apply(e: FormEvent) {
    e.preventDefault();
    const f = folder.trim();
    onChange({
      name: name.trim() || undefined,
      tag: tag.trim() || undefined,
      path: f === "" || f === "/" ? undefined : f.startsWith("/") ? f.replace(/\/+$/, "") : `/${f}`,
    });
  }

  return (
    <form className="filters" onSubmit={apply} aria-label="Filters">
      <div className="field">
        <label htmlFor="filter-folder">Folder (and below)</label>
        <input
          id="filter-folder"
          className="mono"
          value={folder}
          onChange={(e) => setFolder(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor="filter-name">Name (exact)</label>
        <input id="filter-name" value={name} onChange={(e) => setName(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="filter-tag">Tag</label>
        <input
          id="filter-tag"
          list="filter-tag-options"
          value={tag}
          onChange={(e) => setTag(e.target.value)}
        />
        <datalist id="filter-tag-options">
          {tags.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
      </div>
      <div className="field">
        <label htmlFor="filter-type">Type</label>
        <select
          id="filter-type"
          value={search.type ?? ""}
          onChange={(e) => onChange({ type: e.target.value || undefined })}
        >
          <option value="">Any type</option>
          {SECRET_TYPES.map((t) => (
            <option key={t.key} value={t.key}>
              {t.label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="filter-protected">Protection</label>
        <select
          id="filter-protected"
          value={search.protected ?? ""}
          onChange={(e) =>
            onChange({ protected: (e.target.value || undefined) as "yes" | "no" | undefined })
          }
        >
          <option value="">Any</option>
          <option value="yes">Protected</option>
          <option value="no">Not protected</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor="filter-ephemeral">Ephemeral policy</label>
        <select
          id="filter-ephemeral"
          value={search.ephemeral ?? ""}
          onChange={(e) =>
            onChange({ ephemeral: (e.target.value || undefined) as "yes" | "no" | undefined })
          }
        >
          <option value="">Any</option>
          <option value="yes">Ephemeral</option>
          <option value="no">Not ephemeral</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor="filter-sort">Sort by</label>
        <select
          id="filter-sort"
          value={search.sort ?? "name_asc"}
          onChange={(e) => onChange({ sort: e.target.value as SecretsSort })}
        >
          {(Object.keys(SORT_LABELS) as SecretsSort[]).map((k) => (
            <option key={k} value={k}>
              {SORT_LABELS[k]}
            </option>
          ))}
        </select>
      </div>
      <div className="field field-check">
        <input
          id="filter-deleted"
          type="checkbox"
          checked={search.deleted === true}
          onChange={(e) => onChange({ deleted: e.target.checked ? true : undefined })}
        />
        <label htmlFor="filter-deleted">Scheduled for deletion only</label>
      </div>
      <div className="filters-actions">
        <button type="submit" className="btn btn-primary">
          Apply filters
        </button>
        <button
          type="button"
          className="btn btn-ghost"
          onClick={() =>
            onChange({
              name: undefined,
              tag: undefined,
              type: undefined,
              protected: undefined,
              ephemeral: undefined,
              deleted: undefined,
              path: undefined,
            })
          }
        >
          Clear filters
        </button>
      </div>
    </form>
  );
}
