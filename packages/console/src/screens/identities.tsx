import { getRouteApi } from "@tanstack/react-router";
import { useProjects } from "../session/projects.ts";
import { PageHead } from "../ui/page-head.tsx";
import { useTitle } from "../ui/title.ts";
import "./admin.css";
import { AdminOnly } from "./admin-only.tsx";
import { IdentitiesPanel } from "./identities-panel.tsx";

const route = getRouteApi("/p/$projectId/$region/identities");

/**
 * Admins: the issuers whose JWTs Coffer trusts, and the identity bindings
 * that turn them into grants on this project (README, "Signing in without
 * a token"). Read only: the CLI makes the changes.
 */
export function IdentitiesScreen() {
  const { projectId } = route.useParams();
  useTitle("Identities");
  const { projects } = useProjects();
  return (
    <div className="page">
      <PageHead title="Workload identities">
        Workloads sign in with their platform's JWT instead of a token: an issuer Coffer trusts, and
        a binding that matches its claims and gives the grants.
      </PageHead>
      <AdminOnly projectId={projectId} task="see who may sign in with a JWT">
        {() => <IdentitiesPanel projectId={projectId} projects={projects} />}
      </AdminOnly>
    </div>
  );
}
