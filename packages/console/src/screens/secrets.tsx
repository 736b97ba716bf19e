import { getRouteApi, Link } from "@tanstack/react-router";
import { canWrite, useCaller } from "../session/caller.ts";
import { useTitle } from "../ui/title.ts";
import { SecretsFolders } from "./secrets-folders.tsx";
import { SecretsList } from "./secrets-list.tsx";

const route = getRouteApi("/p/$projectId/$region/secrets");

/**
 * Screen 3: the project's secrets in this region, as folders (BrowseSecrets,
 * breadcrumbs) or as a flat list (ListSecrets, filters, sorting). The view,
 * the folder, the filters and the page live in the URL.
 */
export function SecretsScreen() {
  const { projectId, region } = route.useParams();
  const search = route.useSearch();
  // The flat list first (every secret, by name, as the cloud consoles open);
  // the folders are one click away, and the breadcrumbs of a secret lead there.
  const view = search.view ?? "list";
  useTitle("Secrets", search.path);
  const path = search.path ?? "/";
  const caller = useCaller();
  const writer = canWrite(caller.data, projectId);
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Secrets</h1>
          <p className="muted">
            Secrets of this project in region <strong>{region}</strong>.
          </p>
        </div>
        {writer && (
          <div className="page-actions">
            <Link
              to="/p/$projectId/$region/secrets/new"
              params={{ projectId, region }}
              search={{ path }}
              className="btn btn-primary"
            >
              + Create secret
            </Link>
          </div>
        )}
      </div>
      <nav className="segmented" aria-label="View">
        <Link
          from="/p/$projectId/$region/secrets"
          to="."
          search={(prev) => ({ path: prev.path, view: "list" })}
          className={view === "list" ? "active" : undefined}
          aria-current={view === "list" ? "page" : undefined}
        >
          List
        </Link>
        <Link
          from="/p/$projectId/$region/secrets"
          to="."
          search={(prev) => ({ path: prev.path, view: "folders" })}
          className={view === "folders" ? "active" : undefined}
          aria-current={view === "folders" ? "page" : undefined}
        >
          Folders
        </Link>
      </nav>
      {view === "folders" ? (
        <SecretsFolders projectId={projectId} region={region} search={search} writer={writer} />
      ) : (
        <SecretsList projectId={projectId} region={region} search={search} writer={writer} />
      )}
    </div>
  );
}
