import { SecretService, SecretStatus } from "@coffer/api";
import { useQuery } from "@connectrpc/connect-query";
import { getRouteApi, Link, Outlet } from "@tanstack/react-router";
import { isAdmin, useCaller } from "../session/caller.ts";
import { Breadcrumbs } from "../ui/breadcrumbs.tsx";
import { typeLabel } from "../ui/format.ts";
import { QueryState } from "../ui/problem.tsx";
import { useTitle } from "../ui/title.ts";

const route = getRouteApi("/p/$projectId/$region/secrets/$secretId");

/** The secret the URL names, read once and shared by its tabs (GetSecret's cache entry). */
export function useSecret() {
  const { projectId, region, secretId } = route.useParams();
  const secret = useQuery(SecretService.method.getSecret, { region, secretId });
  return { projectId, region, secretId, query: secret, secret: secret.data?.secret };
}

/** A secret's page: its name and place, and the Overview and Versions tabs. */
export function SecretScreen() {
  const { projectId, region, secretId, query, secret } = useSecret();
  const caller = useCaller();
  const params = { projectId, region, secretId };
  useTitle(secret?.name, "Secret");
  return (
    <div className="page">
      {secret ? (
        <Breadcrumbs
          projectId={projectId}
          region={region}
          path={secret.path}
          current={secret.name}
        />
      ) : (
        <Breadcrumbs projectId={projectId} region={region} path="/" current="Secret" />
      )}
      <QueryState query={query} what="the secret" />
      {secret && (
        <>
          <div className="page-head">
            <div>
              <h1 className="secret-title">{secret.name}</h1>
              <p className="muted">
                <span className="badge">{typeLabel(secret.type)}</span>{" "}
                {secret.protected && <span className="badge badge-info">Protected</span>}{" "}
                {secret.ephemeralPolicy && <span className="badge badge-info">Ephemeral</span>}{" "}
                {secret.status === SecretStatus.LOCKED && (
                  <span className="badge badge-danger">Scheduled for deletion</span>
                )}
              </p>
            </div>
          </div>
          <nav className="tabs" aria-label="Secret">
            <Link
              to="/p/$projectId/$region/secrets/$secretId/overview"
              params={params}
              activeProps={{ className: "active", "aria-current": "page" }}
            >
              Overview
            </Link>
            <Link
              to="/p/$projectId/$region/secrets/$secretId/versions"
              params={params}
              activeProps={{ className: "active", "aria-current": "page" }}
            >
              Versions
            </Link>
            {isAdmin(caller.data, projectId) && (
              <Link
                to="/p/$projectId/$region/audit"
                params={{ projectId, region }}
                search={{ secret: secretId }}
              >
                Audit
              </Link>
            )}
          </nav>
          <div className="tab-panel">
            <Outlet />
          </div>
        </>
      )}
    </div>
  );
}
