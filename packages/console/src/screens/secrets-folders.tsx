import { SecretService, SecretStatus } from "@coffer/api";
import { useQuery } from "@connectrpc/connect-query";
import { Link, useNavigate } from "@tanstack/react-router";
import type { SecretsSearch } from "../search.ts";
import { Breadcrumbs } from "../ui/breadcrumbs.tsx";
import { EmptySecrets } from "../ui/empty-secrets.tsx";
import { formatTime, isoTime, plural, typeLabel } from "../ui/format.ts";
import { Pager } from "../ui/pager.tsx";
import { QueryState } from "../ui/problem.tsx";
import { Tags } from "../ui/tags.tsx";

const PAGE_SIZE = 50;

/** The folder view: what is directly under one path (BrowseSecrets), folders first. */
export function SecretsFolders({
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
  const path = search.path ?? "/";
  const page = search.page ?? 1;
  const navigate = useNavigate({ from: "/p/$projectId/$region/secrets" });
  const browse = useQuery(SecretService.method.browseSecrets, {
    region,
    projectId,
    prefix: path,
    page,
    pageSize: PAGE_SIZE,
  });
  const items = browse.data?.items ?? [];
  const total = Number(browse.data?.totalCount ?? 0);
  return (
    <section aria-label="Folders">
      <Breadcrumbs projectId={projectId} region={region} path={path} />
      <QueryState query={browse} what="secrets" />
      {browse.data && items.length === 0 && (
        <EmptySecrets projectId={projectId} region={region} path={path} writer={writer} />
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <caption className="visually-hidden">Folders and secrets in {path}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Tags</th>
                <th scope="col">Versions</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {items.map((item) =>
                item.kind.case === "folder" ? (
                  <tr key={`f:${item.fullPath}`}>
                    <td>
                      <Link
                        from="/p/$projectId/$region/secrets"
                        to="."
                        search={{ path: item.fullPath, view: "folders" }}
                        className="row-link"
                      >
                        <span className="icon-folder" aria-hidden="true" />
                        {item.name}/
                      </Link>
                    </td>
                    <td className="muted">Folder</td>
                    <td />
                    <td className="muted">{plural(item.kind.value.secretCount, "secret")}</td>
                    <td />
                  </tr>
                ) : item.kind.case === "secret" ? (
                  <tr key={`s:${item.kind.value.id}`}>
                    <td>
                      <Link
                        to="/p/$projectId/$region/secrets/$secretId/overview"
                        params={{ projectId, region, secretId: item.kind.value.id }}
                        className="row-link"
                      >
                        <span className="icon-key" aria-hidden="true" />
                        {item.name}
                      </Link>
                      {item.kind.value.protected && (
                        <span className="badge badge-info">Protected</span>
                      )}
                      {item.kind.value.ephemeralPolicy && <span className="badge">Ephemeral</span>}
                      {item.kind.value.status === SecretStatus.LOCKED && (
                        <span className="badge badge-danger">Scheduled for deletion</span>
                      )}
                    </td>
                    <td>{typeLabel(item.kind.value.type)}</td>
                    <td>
                      <Tags tags={item.kind.value.tags} />
                    </td>
                    <td>{item.kind.value.versionCount}</td>
                    <td>
                      <time dateTime={isoTime(item.kind.value.updatedAt)}>
                        {formatTime(item.kind.value.updatedAt)}
                      </time>
                    </td>
                  </tr>
                ) : null,
              )}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        page={page}
        pageSize={PAGE_SIZE}
        total={total}
        label="items"
        onPage={(p) => navigate({ search: (prev) => ({ ...prev, page: p }) })}
      />
    </section>
  );
}
