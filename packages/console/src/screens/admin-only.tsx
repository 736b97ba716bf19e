import type { GetCallerResponse } from "@coffer/api";
import type { ReactNode } from "react";
import { isAdmin, useCaller } from "../session/caller.ts";
import { QueryState } from "../ui/problem.tsx";

/**
 * The body of a screen for the project's admins (Audit, Tokens): the
 * caller's grants read first, then the screen for an admin, or what to do
 * for anyone else (`task` says what only admins do).
 */
export function AdminOnly({
  projectId,
  task,
  children,
}: {
  projectId: string;
  task: string;
  children: (caller: GetCallerResponse) => ReactNode;
}) {
  const caller = useCaller();
  return (
    <>
      <QueryState query={caller} what="your token's grants" />
      {caller.data &&
        (isAdmin(caller.data, projectId) ? (
          children(caller.data)
        ) : (
          <div className="notice notice-info">
            {`Only the project's admins ${task}. Ask one for a token with the admin role.`}
          </div>
        ))}
    </>
  );
}
