import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { useTitle } from "../ui/title.ts";
import { BulkImportForm } from "./bulk-import-form.tsx";

const route = getRouteApi("/p/$projectId/$region/import");

/** Screen 9, bulk import, into the folder the person came from. */
export function BulkImportScreen() {
  const { projectId, region } = route.useParams();
  const { path } = route.useSearch();
  const navigate = useNavigate();
  useTitle("Import secrets");
  return (
    <div className="page">
      <BulkImportForm
        projectId={projectId}
        region={region}
        {...(path ? { initialPath: path } : {})}
        onOpenFolder={(folder) =>
          navigate({
            to: "/p/$projectId/$region/secrets",
            params: { projectId, region },
            search: { path: folder },
          })
        }
      />
    </div>
  );
}
