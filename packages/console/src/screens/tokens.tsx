import { getRouteApi } from "@tanstack/react-router";
import { isAdmin, isGlobalAdmin } from "../session/caller.ts";
import { useProjects } from "../session/projects.ts";
import { PageHead } from "../ui/page-head.tsx";
import { useTitle } from "../ui/title.ts";
import "./admin.css";
import { AdminOnly } from "./admin-only.tsx";
import { TokensPanel } from "./tokens-panel.tsx";

const route = getRouteApi("/p/$projectId/$region/tokens");

/** Screen 10 (admins): the project's tokens; create one (its value shown once), revoke. */
export function TokensScreen() {
  const { projectId } = route.useParams();
  useTitle("Tokens");
  const { projects } = useProjects();
  return (
    <div className="page">
      <PageHead title="Tokens">
        Access tokens with a grant on this project. A token's value is shown once, when it is
        created.
      </PageHead>
      <AdminOnly projectId={projectId} task="manage its tokens">
        {(caller) => (
          <TokensPanel
            projectId={projectId}
            projects={projects.filter((p) => isAdmin(caller, p.id))}
            globalAdmin={isGlobalAdmin(caller)}
            callerTokenId={caller.token?.id}
          />
        )}
      </AdminOnly>
    </div>
  );
}
