import { AdminService, type Project, SecretService } from "@coffer/api";
import { skipToken, useQuery } from "@connectrpc/connect-query";
import { isAdmin, useCaller } from "./caller.ts";

/**
 * The projects the caller can open: those its grants name (GetCaller), and
 * for an admin those it administers (ListProjects; every project for a
 * global admin), merged by id and sorted by name.
 */
export function useProjects() {
  const caller = useCaller();
  const admin = isAdmin(caller.data);
  const listed = useQuery(AdminService.method.listProjects, admin ? { pageSize: 1000 } : skipToken);
  const byId = new Map<string, Project>();
  for (const p of caller.data?.projects ?? []) byId.set(p.id, p);
  for (const p of listed.data?.projects ?? []) byId.set(p.id, p);
  const projects = [...byId.values()].sort((a, b) => a.name.localeCompare(b.name));
  return {
    projects,
    isPending: caller.isPending || (admin && listed.isPending),
    error: caller.error ?? listed.error,
    failureReason: caller.failureReason ?? listed.failureReason,
  };
}

/** The regions the server serves, the default first. */
export function useRegions() {
  return useQuery(SecretService.method.listRegions, {}, { staleTime: Number.POSITIVE_INFINITY });
}
