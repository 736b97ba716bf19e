import { Link } from "@tanstack/react-router";

/** The folders of a path, each a link to the Secrets screen's folder view. */
export function Breadcrumbs({
  projectId,
  region,
  path,
  current,
}: {
  projectId: string;
  region: string;
  path: string;
  /** A last crumb that is not a folder (a secret's name). */
  current?: string;
}) {
  const segments = path.split("/").filter((s) => s !== "");
  const crumbs = [{ label: "All secrets", path: "/" }];
  segments.forEach((s, i) => {
    crumbs.push({ label: s, path: `/${segments.slice(0, i + 1).join("/")}` });
  });
  return (
    <nav aria-label="Breadcrumb" className="breadcrumbs">
      <ol>
        {crumbs.map((c, i) => {
          const last = current === undefined && i === crumbs.length - 1;
          return (
            <li key={c.path}>
              {last ? (
                <span aria-current="page">{c.label}</span>
              ) : (
                <Link
                  to="/p/$projectId/$region/secrets"
                  params={{ projectId, region }}
                  search={{ path: c.path, view: "folders" }}
                >
                  {c.label}
                </Link>
              )}
            </li>
          );
        })}
        {current !== undefined && (
          <li>
            <span aria-current="page">{current}</span>
          </li>
        )}
      </ol>
    </nav>
  );
}
