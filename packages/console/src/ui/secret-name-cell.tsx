import { type Secret, SecretStatus } from "@coffer/api";
import { Link } from "@tanstack/react-router";

/**
 * A secret's first cell in the Secrets list and the folder view: its name,
 * leading to its Overview, and what a person must know before opening it
 * (protected, ephemeral, scheduled for deletion).
 */
export function SecretNameCell({
  projectId,
  region,
  secret,
}: {
  projectId: string;
  region: string;
  secret: Secret;
}) {
  return (
    <td>
      <Link
        to="/p/$projectId/$region/secrets/$secretId/overview"
        params={{ projectId, region, secretId: secret.id }}
        className="row-link"
      >
        <span className="icon-key" aria-hidden="true" />
        {secret.name}
      </Link>
      {secret.protected && <span className="badge badge-info">Protected</span>}
      {secret.ephemeralPolicy && <span className="badge">Ephemeral</span>}
      {secret.status === SecretStatus.LOCKED && (
        <span className="badge badge-danger">Scheduled for deletion</span>
      )}
    </td>
  );
}
