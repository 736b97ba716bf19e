import { Link } from "@tanstack/react-router";

/** What to do when a folder or a list holds no secret. */
export function EmptySecrets({
  projectId,
  region,
  path,
  writer,
  filtered,
}: {
  projectId: string;
  region: string;
  path: string;
  writer: boolean;
  /** Whether filters hide what there is. */
  filtered?: boolean;
}) {
  if (filtered) {
    return (
      <div className="empty">
        <p className="empty-title">No secret matches these filters.</p>
        <p className="muted">Change or clear the filters to see more.</p>
      </div>
    );
  }
  return (
    <div className="empty">
      <p className="empty-title">No secrets here yet.</p>
      {writer ? (
        <p>
          Create one with <strong>+ Create secret</strong>, or{" "}
          <Link to="/p/$projectId/$region/import" params={{ projectId, region }} search={{ path }}>
            import a .env, JSON or YAML file
          </Link>
          .
        </p>
      ) : (
        <p className="muted">Your token may read secrets here but not create them.</p>
      )}
    </div>
  );
}
