import { Link, Outlet, useNavigate, useParams, useRouterState } from "@tanstack/react-router";
import { isAdmin, useCaller } from "../session/caller.ts";
import { useProjects, useRegions } from "../session/projects.ts";
import { useSession } from "../session/session-context.tsx";

/** The page around every screen: header (project, region, sign out), nav, main. */
export function Shell() {
  const pathname = useRouterState({ select: (s) => s.location.pathname });
  const { signedIn } = useSession();
  if (pathname === "/sign-in" || !signedIn) {
    // Signed out (a moment before the sign-in screen shows): render no
    // screen, so that none reads anything without a token.
    return <main className="signin-page">{pathname === "/sign-in" && <Outlet />}</main>;
  }
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header />
      <main id="main" className="content" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}

/** A link to the page shown: marked so, for the eye and for a screen reader. */
export const ACTIVE_PAGE = { className: "active", "aria-current": "page" } as const;

/** The screens of a project in a region, in the main navigation; the admins' last. */
const NAV = [
  ["/p/$projectId/$region/secrets", "Secrets"],
  ["/p/$projectId/$region/import", "Import"],
] as const;
const ADMIN_NAV = [
  ["/p/$projectId/$region/audit", "Audit"],
  ["/p/$projectId/$region/tokens", "Tokens"],
  ["/p/$projectId/$region/identities", "Identities"],
] as const;

function Header() {
  const { signOut } = useSession();
  const params = useParams({ strict: false });
  const projectId = params.projectId;
  const region = params.region;
  return (
    <header className="topbar">
      <Link to="/" className="brand">
        <span className="brand-mark" aria-hidden="true">
          ◆
        </span>{" "}
        Coffer
      </Link>
      {projectId !== undefined && region !== undefined ? (
        <>
          <ProjectBadge projectId={projectId} />
          <RegionSwitch projectId={projectId} region={region} />
          <MainNav projectId={projectId} region={region} />
        </>
      ) : (
        <span className="topbar-spacer" />
      )}
      <Who />
      <button type="button" className="btn btn-ghost topbar-signout" onClick={signOut}>
        Sign out
      </button>
    </header>
  );
}

function ProjectBadge({ projectId }: { projectId: string }) {
  const { projects } = useProjects();
  const name = projects.find((p) => p.id === projectId)?.name;
  return (
    <div className="topbar-item">
      <span className="topbar-label">Project</span>
      <Link to="/projects" className="topbar-value" title="Change project">
        {name ?? projectId.slice(0, 8)}
      </Link>
    </div>
  );
}

function RegionSwitch({ projectId, region }: { projectId: string; region: string }) {
  const regions = useRegions();
  const navigate = useNavigate();
  const list = regions.data?.regions ?? [region];
  return (
    <div className="topbar-item">
      <label className="topbar-label" htmlFor="region-switch">
        Region
      </label>
      <select
        id="region-switch"
        className="topbar-select"
        value={region}
        aria-describedby="region-note"
        title="Each secret stays in the region it was created in: it cannot be moved."
        onChange={(e) =>
          navigate({
            to: "/p/$projectId/$region/secrets",
            params: { projectId, region: e.target.value },
          })
        }
      >
        {(list.includes(region) ? list : [region, ...list]).map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
      <span id="region-note" className="visually-hidden">
        Each secret stays in the region it was created in: it cannot be moved.
      </span>
    </div>
  );
}

function MainNav({ projectId, region }: { projectId: string; region: string }) {
  const caller = useCaller();
  const items = isAdmin(caller.data, projectId) ? [...NAV, ...ADMIN_NAV] : NAV;
  return (
    <nav className="mainnav" aria-label="Main">
      {items.map(([to, label]) => (
        <Link key={to} to={to} params={{ projectId, region }} activeProps={ACTIVE_PAGE}>
          {label}
        </Link>
      ))}
    </nav>
  );
}

/** The signed-in token's name, so a person knows which token they act with. */
function Who() {
  const caller = useCaller();
  const token = caller.data?.token;
  if (token === undefined) return null;
  return (
    <span className="topbar-who" title={`Token ${token.prefix}…`}>
      {token.name || token.prefix}
    </span>
  );
}
