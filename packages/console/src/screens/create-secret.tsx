import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useSecretChanged } from "../api/cache.ts";
import { useTitle } from "../ui/title.ts";
import { CreateSecretForm } from "./create-secret-form.tsx";

const route = getRouteApi("/p/$projectId/$region/secrets/new");

/**
 * Screen 4, "+ Create secret": the form, in the project and region of the
 * route and the folder the person came from; once the server has stored
 * the secret, its Overview tab (in the region it was stored in).
 */
export function CreateSecretScreen() {
  const { projectId, region } = route.useParams();
  const { path } = route.useSearch();
  const navigate = useNavigate();
  useTitle("Create secret");
  const changed = useSecretChanged();
  return (
    <div className="page">
      <CreateSecretForm
        projectId={projectId}
        region={region}
        {...(path ? { initialPath: path } : {})}
        onCreated={(secret) => {
          // The new secret is in GetSecret's cache at once, and the lists read again.
          void changed(secret.region || region, secret);
          void navigate({
            to: "/p/$projectId/$region/secrets/$secretId/overview",
            params: { projectId, region: secret.region || region, secretId: secret.id },
          });
        }}
        onCancel={() =>
          navigate({
            to: "/p/$projectId/$region/secrets",
            params: { projectId, region },
            search: path ? { path } : {},
          })
        }
      />
    </div>
  );
}
