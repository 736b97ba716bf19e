import { getRouteApi } from "@tanstack/react-router";
import { isGlobalAdmin } from "../session/caller.ts";
import { useProjects } from "../session/projects.ts";
import { PageHead } from "../ui/page-head.tsx";
import { useTitle } from "../ui/title.ts";
import "./admin.css";
import { AdminOnly } from "./admin-only.tsx";
import { AuditPanel } from "./audit-panel.tsx";

const route = getRouteApi("/p/$projectId/$region/audit");

/**
 * Screen 8 (admins): the audit trail of the project in this region, or of
 * one secret (`?secret=<id>`), filtered by token, method, outcome and time,
 * the filters in the URL.
 */
export function AuditScreen() {
  const { projectId, region } = route.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  useTitle("Audit");
  const { projects } = useProjects();
  return (
    <div className="page">
      <PageHead title="Audit">
        Every call on this project in region <strong>{region}</strong>, allowed or refused, newest
        first. Token and project changes, and sign-ins with a JWT, are kept in the default region.
      </PageHead>
      <AdminOnly projectId={projectId} task="read its audit trail">
        {(caller) => (
          <AuditPanel
            projectId={projectId}
            region={region}
            search={search}
            globalAdmin={isGlobalAdmin(caller)}
            callerToken={caller.token}
            projects={projects}
            onSearch={(changes) =>
              navigate({ search: (prev) => ({ ...prev, page: undefined, ...changes }) })
            }
          />
        )}
      </AdminOnly>
    </div>
  );
}
