import { getRouteApi } from "@tanstack/react-router";
import { isAdmin, isGlobalAdmin, useCaller } from "../session/caller.ts";
import { useProjects } from "../session/projects.ts";
import { QueryState } from "../ui/problem.tsx";
import { useTitle } from "../ui/title.ts";
import "./admin.css";
import { TokensPanel } from "./tokens-panel.tsx";

const route = getRouteApi("/p/$projectId/$region/tokens");

/** Screen 10 (admins): the project's tokens; create one (its value shown once), revoke. */
export function TokensScreen() {
  const { projectId } = route.useParams();
  const caller = useCaller();
  useTitle("Tokens");
  const { projects } = useProjects();
  const admin = isAdmin(caller.data, projectId);
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Tokens</h1>
          <p className="muted">
            Access tokens with a grant on this project. A token's value is shown once, when it is
            created.
          </p>
        </div>
      </div>
      <QueryState query={caller} what="your token's grants" />
      {caller.data && !admin && (
        <div className="notice notice-info">
          Only the project's admins manage its tokens. Ask one for a token with the admin role.
        </div>
      )}
      {caller.data && admin && (
        <TokensPanel
          projectId={projectId}
          projects={projects.filter((p) => isAdmin(caller.data, p.id))}
          globalAdmin={isGlobalAdmin(caller.data)}
          callerTokenId={caller.data.token?.id}
        />
      )}
    </div>
  );
}
