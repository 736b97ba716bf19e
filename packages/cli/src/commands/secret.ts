import { type CommandSpec, commands, group, type OptionSet } from "../args.ts";
import {
  CONNECTION_OPTIONS,
  DATA_OPTIONS,
  GENERATE_OPTIONS,
  OUTPUT_OPTION,
  PAGE_OPTIONS,
  PAYLOAD_SHAPES,
  PROJECT_OPTION,
  SECRET_TYPE_NAMES,
} from "../flags.ts";

const SECRET_ARG = {
  name: "SECRET",
  help: "the secret: /path/name (e.g. /prod/db, or /db in the root folder) or its id",
};
const COMMON = { ...PROJECT_OPTION, ...OUTPUT_OPTION, ...CONNECTION_OPTIONS } as const;
const ETAG = {
  etag: {
    type: "string",
    value: "ETAG",
    help: "fail with exit code 5 (ABORTED) if the secret changed since this etag was read",
  },
} as const satisfies OptionSet;

const POLICY_OPTIONS = {
  ttl: {
    type: "string",
    value: "DURATION",
    help: "ephemeral: each version expires this long after it is created or enabled (1s to 365d)",
  },
  "single-access": {
    type: "boolean",
    help: "ephemeral: the first access of each version consumes it",
  },
  "expiry-action": {
    type: "string",
    value: "ACTION",
    help: "what expiry does to a version: disable (default) or delete",
  },
} as const satisfies OptionSet;

/** `protect` and `unprotect`. */
function protection(protect: boolean) {
  return {
    summary: protect
      ? "protect a secret: it cannot be deleted until unprotected"
      : "remove a secret's protection",
    args: [SECRET_ARG],
    options: { ...ETAG, ...COMMON },
    examples: [`coffer secret ${protect ? "protect" : "unprotect"} /prod/db`],
  } as const;
}

/** What the commands of `coffer secret` take; secret-run.ts has what they do. */
export const SECRET = {
  create: {
    summary: "create a secret, optionally with its first version",
    description: `The secret is created at the path and name given. With --data,
--from-file or --generate, its first version is created too, enabled. The
payload is checked against the type, and its CRC-32 is sent so the server
checks it arrived intact. --generate makes a random value (opaque secrets),
which is never printed unless --show-generated is given.

${PAYLOAD_SHAPES}`,
    args: [{ name: "SECRET", help: "where: /path/name, e.g. /prod/db (/db for the root folder)" }],
    options: {
      type: {
        type: "string",
        value: "TYPE",
        help: `payload type, fixed for life: ${SECRET_TYPE_NAMES.join(", ")} (default opaque)`,
      },
      ...DATA_OPTIONS,
      ...GENERATE_OPTIONS,
      description: {
        type: "string",
        value: "TEXT",
        help: "a description (at most 1024 characters)",
      },
      "version-description": {
        type: "string",
        value: "TEXT",
        help: "a description of the first version",
      },
      tag: { type: "string", multiple: true, value: "TAG", help: "a tag" },
      protected: { type: "boolean", help: "protect it from deletion from the start" },
      ...POLICY_OPTIONS,
      ...COMMON,
    },
    examples: [
      "coffer secret create /prod/db --type database_credentials --from-file db.json",
      "coffer secret create /prod/api-key --from-file - < key.txt",
      "coffer secret create /prod/session-key --generate 48 --charset base64url",
      "coffer secret create /ci/bootstrap --single-access --expiry-action delete --from-file token.txt",
      "coffer secret create /ops/deploy-key --type ssh_key --from-file ~/.ssh/id_ed25519",
      "coffer secret create /web/tls --type certificate --from-file fullchain-and-key.pem",
    ],
  },
  get: {
    summary: "show a secret's metadata (never its payload)",
    description: `By /path/name, the live secret there; with --deleted, the one scheduled
for deletion there (an id finds either).`,
    args: [SECRET_ARG],
    options: {
      deleted: { type: "boolean", help: "the secret at /path/name that is scheduled for deletion" },
      ...COMMON,
    },
    examples: [
      "coffer secret get /prod/db",
      "coffer secret get /prod/db -o json | jq -r .secret.etag",
      "coffer secret get /prod/old-db --deleted",
    ],
  },
  list: {
    summary: "list secrets, with filters",
    description: `Lists the secrets of the project that the token may read, by name.
PREFIX lists a folder and everything below it; --path lists one folder only.`,
    args: [
      { name: "PREFIX", help: "a folder, e.g. /prod: it and everything below it", optional: true },
    ],
    options: {
      path: { type: "string", value: "FOLDER", help: "only secrets directly in this folder" },
      name: { type: "string", value: "NAME", help: "only secrets with this exact name" },
      tag: { type: "string", multiple: true, value: "TAG", help: "only secrets with this tag" },
      type: { type: "string", value: "TYPE", help: "only secrets of this type" },
      ephemeral: { type: "boolean", help: "only secrets with an ephemeral policy" },
      protected: { type: "boolean", help: "only protected secrets" },
      deleted: { type: "boolean", help: "only secrets scheduled for deletion (restorable)" },
      "order-by": {
        type: "string",
        value: "ORDER",
        help: "name (default), name_desc, created_at, created_at_desc, updated_at or updated_at_desc",
      },
      ...PAGE_OPTIONS,
      ...COMMON,
    },
    examples: [
      "coffer secret list",
      "coffer secret list /prod --tag team-a",
      "coffer secret list -o json | jq -r '.secrets[] | .path + \"/\" + .name'",
    ],
  },
  update: {
    summary: "rename, move, describe or tag a secret, or change its ephemeral policy",
    description: `Changes only what the flags name. --tag replaces the whole tag list;
--add-tag and --remove-tag change it, and the update is refused (exit code 5)
if the secret changed since it was read, so that a concurrent change of its
tags is never lost (run it again). The ephemeral flags change the policy of a secret created with one (a policy
cannot be added to a secret created without one, nor removed).`,
    args: [SECRET_ARG],
    options: {
      name: { type: "string", value: "NAME", help: "a new name" },
      path: { type: "string", value: "FOLDER", help: "move it to this folder" },
      description: { type: "string", value: "TEXT", help: "a new description" },
      tag: { type: "string", multiple: true, value: "TAG", help: "the new tag list" },
      "add-tag": {
        type: "string",
        multiple: true,
        value: "TAG",
        help: "add this tag, keep the others",
      },
      "remove-tag": {
        type: "string",
        multiple: true,
        value: "TAG",
        help: "remove this tag, keep the others",
      },
      "clear-tags": { type: "boolean", help: "remove every tag" },
      ...POLICY_OPTIONS,
      "no-ttl": { type: "boolean", help: "ephemeral: versions no longer expire with time" },
      "no-single-access": {
        type: "boolean",
        help: "ephemeral: accesses no longer consume versions",
      },
      ...ETAG,
      ...COMMON,
    },
    examples: [
      "coffer secret update /prod/db --description 'orders database' --tag team-a --tag pci",
      "coffer secret update /prod/db --path /archive",
      "coffer secret update /prod/db --add-tag pci --remove-tag draft",
    ],
  },
  delete: {
    summary: "schedule a secret for deletion (restorable for the restore window)",
    description: `The secret is hidden and locked, and can be restored with
"coffer secret restore" until the server's restore window ends (7 days by
default). An ephemeral secret is deleted at once. A protected secret refuses
(exit code 5): unprotect it first.`,
    args: [SECRET_ARG],
    options: { ...ETAG, ...COMMON },
    examples: ["coffer secret delete /prod/old-db"],
  },
  restore: {
    summary: "cancel a secret's scheduled deletion",
    args: [{ ...SECRET_ARG, help: "the secret scheduled for deletion: /path/name or id" }],
    options: COMMON,
    examples: ["coffer secret restore /prod/old-db"],
  },
  protect: protection(true),
  unprotect: protection(false),
  browse: {
    summary: "show the folders and secrets directly under a folder",
    args: [{ name: "FOLDER", help: "the folder to browse (default /)", optional: true }],
    options: { ...PAGE_OPTIONS, ...COMMON },
    examples: ["coffer secret browse", "coffer secret browse /prod"],
  },
  tags: {
    summary: "list the tags in use in the project",
    options: { ...PAGE_OPTIONS, ...COMMON },
  },
  types: {
    summary: "list the secret types in use in the project",
    description: `Every type a secret can have: ${SECRET_TYPE_NAMES.join(", ")}.`,
    options: { ...PAGE_OPTIONS, ...COMMON },
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer secret ...`. */
export const secretGroup = group({
  name: "secret",
  summary: "create, list, change and delete secrets (metadata)",
  description: `A secret lives at /path/name in a project and holds numbered versions
(see "coffer version"). Commands take a secret as /path/name or by its id;
the project comes from --project, COFFER_PROJECT or the profile.`,
  children: Object.values(commands(SECRET, async () => (await import("./secret-run.ts")).run)),
});
