import { getRouteApi } from "@tanstack/react-router";
import { isAdmin, isGlobalAdmin, useCaller } from "../session/caller.ts";
import { QueryState } from "../ui/problem.tsx";
import { useTitle } from "../ui/title.ts";
import "./admin.css";
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
  const caller = useCaller();
  useTitle("Audit");
  const admin = isAdmin(caller.data, projectId);
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Audit</h1>
          <p className="muted">
            Every call on this project in region <strong>{region}</strong>, allowed or refused,
            newest first. Token and project changes are kept in the default region.
          </p>
        </div>
      </div>
      <QueryState query={caller} what="your token's grants" />
      {caller.data && !admin && (
        <div className="notice notice-info">
          Only the project's admins read its audit trail. Ask one for a token with the admin role.
        </div>
      )}
      {caller.data && admin && (
        <AuditPanel
          projectId={projectId}
          region={region}
          search={search}
          globalAdmin={isGlobalAdmin(caller.data)}
          callerToken={caller.data.token}
          onSearch={(changes) =>
            navigate({ search: (prev) => ({ ...prev, page: undefined, ...changes }) })
          }
        />
      )}
    </div>
  );
}
