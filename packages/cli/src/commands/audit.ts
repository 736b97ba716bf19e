import { type CommandSpec, commands, group } from "../args.ts";
import { CONNECTION_OPTIONS, OUTPUT_OPTION, PAGE_OPTIONS, PROJECT_OPTION } from "../flags.ts";

/** What the commands of `coffer audit` take; audit-run.ts has what they do. */
export const AUDIT = {
  list: {
    summary: "list audit events, newest first, with filters",
    description: `Every call to Coffer, allowed or denied, is an audit event. Events are
read from one region (--region; default the server's default region). The
current project (--project, COFFER_PROJECT or the profile) filters them,
unless --all-projects.`,
    options: {
      secret: {
        type: "string",
        value: "SECRET",
        help: "only events about this secret (/path/name or id)",
      },
      "token-id": { type: "string", value: "ID", help: "only calls made with this token id" },
      method: {
        type: "string",
        value: "METHOD",
        help: "only this method, e.g. AccessSecretVersion",
      },
      outcome: {
        type: "string",
        value: "CODE",
        help: "only this outcome, e.g. ok, not_found, permission_denied",
      },
      since: {
        type: "string",
        value: "TIME",
        help: "events from this time on: 2025-06-01T00:00:00Z, or 1h (ago)",
      },
      until: {
        type: "string",
        value: "TIME",
        help: "events before this time (same forms as --since)",
      },
      "all-projects": { type: "boolean", help: "ignore the current project" },
      ...PAGE_OPTIONS,
      ...PROJECT_OPTION,
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer audit list --secret /prod/db --method AccessSecretVersionByPath --since 24h",
      "coffer audit list --outcome permission_denied -o json",
    ],
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer audit ...`. */
export const auditGroup = group({
  name: "audit",
  summary: "read the audit trail (needs an admin token)",
  children: Object.values(commands(AUDIT, async () => (await import("./audit-run.ts")).run)),
});
