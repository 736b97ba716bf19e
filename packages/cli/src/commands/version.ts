import { type CommandSpec, commands, group, type OptionSet } from "../args.ts";
import {
  CONNECTION_OPTIONS,
  DATA_OPTIONS,
  GENERATE_OPTIONS,
  OUTPUT_OPTION,
  PAGE_OPTIONS,
  PAYLOAD_SHAPES,
  PROJECT_OPTION,
  VERSION_STATUS_NAMES,
} from "../flags.ts";

const SECRET_ARG = {
  name: "SECRET",
  help: "the secret: /path/name (e.g. /prod/db) or its id",
};
const REVISION_ARG = {
  name: "REVISION",
  help: 'the version: its number, "latest" or "latest_enabled"',
};
const COMMON = { ...PROJECT_OPTION, ...OUTPUT_OPTION, ...CONNECTION_OPTIONS } as const;
const ETAG = {
  etag: {
    type: "string",
    value: "ETAG",
    help: "fail with exit code 5 (ABORTED) if the secret changed since this etag was read",
  },
} as const satisfies OptionSet;

export type StateVerb = "enable" | "disable" | "delete" | "restore" | "destroy";

const STATE_VERBS: Record<StateVerb, { summary: string; description?: string }> = {
  enable: {
    summary: "enable a version: it can be accessed again",
    description: "An ephemeral secret's version gets a new time to live.",
  },
  disable: {
    summary: "disable a version: its payload is kept but cannot be accessed",
  },
  delete: {
    summary: "schedule a version for deletion (restorable for the restore window)",
  },
  restore: {
    summary: "cancel a version's scheduled deletion; it comes back disabled",
  },
  destroy: {
    summary: "destroy a version's payload now, for good (admins; audited)",
    description: `Unlike "coffer version delete", which schedules the version for deletion
and lets it be restored until the restore window ends, this destroys its
payload at once: nothing can bring it back. For a payload that must be gone
now (a leaked credential). The version stays listed, destroyed (status
deleted), so its revision is never reused. Needs the admin role on the
project and --yes; the call is audited.`,
  },
};

/** `enable`, `disable`, `delete`, `restore` and `destroy`: a secret and a revision. */
function stateCommand(verb: StateVerb) {
  const { summary, description } = STATE_VERBS[verb];
  return {
    summary,
    ...(description !== undefined && { description }),
    args: [SECRET_ARG, REVISION_ARG],
    options: {
      ...ETAG,
      ...(verb === "destroy" && {
        yes: { type: "boolean", help: "yes, destroy it now: this cannot be undone" } as const,
      }),
      ...COMMON,
    },
    examples: [`coffer version ${verb} /prod/db 1${verb === "destroy" ? " --yes" : ""}`],
  } as const;
}

/** What the commands of `coffer version` take; version-run.ts has what they do. */
export const VERSION = {
  create: {
    summary: "add a version to a secret",
    description: `The payload comes from --data, --from-file, --generate (a random value,
opaque secrets only, never printed unless --show-generated), or stdin when it
is piped. It must fit the secret's type. The new version is enabled unless --disabled;
--disable-previous disables the version that was the latest enabled one.

${PAYLOAD_SHAPES}`,
    args: [SECRET_ARG],
    options: {
      ...DATA_OPTIONS,
      ...GENERATE_OPTIONS,
      description: { type: "string", value: "TEXT", help: "a description of the version" },
      disabled: { type: "boolean", help: "create it disabled" },
      "disable-previous": { type: "boolean", help: "disable the previous latest enabled version" },
      ...ETAG,
      ...COMMON,
    },
    examples: [
      "coffer version create /prod/db --from-file db.json --disable-previous",
      "vault-export | coffer version create /prod/api-key",
      "coffer version create /prod/session-key --generate 64 --charset hex --disable-previous",
    ],
  },
  get: {
    summary: "show a version's metadata (never its payload)",
    args: [
      SECRET_ARG,
      { ...REVISION_ARG, help: `${REVISION_ARG.help} (default latest)`, optional: true },
    ],
    options: COMMON,
    examples: ["coffer version get /prod/db", "coffer version get /prod/db 3 -o json"],
  },
  list: {
    summary: "list a secret's versions, newest first",
    args: [SECRET_ARG],
    options: {
      status: {
        type: "string",
        multiple: true,
        value: "STATUS",
        help: `only versions in this status: ${VERSION_STATUS_NAMES.join(", ")} (default enabled and disabled)`,
      },
      ...PAGE_OPTIONS,
      ...COMMON,
    },
    examples: [
      "coffer version list /prod/db",
      "coffer version list /prod/db --status scheduled_for_deletion",
    ],
  },
  update: {
    summary: "change a version's description or ephemeral properties",
    description: `Ephemeral properties can only be tightened: single access cannot be turned
off, an expiry cannot be removed or moved later, and the delete action cannot
become disable.`,
    args: [SECRET_ARG, REVISION_ARG],
    options: {
      description: { type: "string", value: "TEXT", help: "a new description" },
      "expires-at": {
        type: "string",
        value: "TIME",
        help: "ephemeral: expire at this time (1s to 365d ahead, not later than now set), e.g. 2030-01-01T00:00:00Z",
      },
      "expires-in": {
        type: "string",
        value: "DURATION",
        help: "ephemeral: expire this long from now (not later than now set)",
      },
      "single-access": { type: "boolean", help: "ephemeral: the first access consumes it" },
      "expiry-action": { type: "string", value: "ACTION", help: "ephemeral: disable or delete" },
      ...ETAG,
      ...COMMON,
    },
    examples: ["coffer version update /prod/db 3 --description 'rotated by ops'"],
  },
  access: {
    summary: "print a version's payload",
    description: `Prints the payload of a version (by default the latest enabled one).
Without --raw, a newline is added when the payload does not end with one.
--raw prints exactly the payload's bytes, nothing added: use it for files
and binary payloads. --field NAME prints one field of a JSON payload
(strings as they are, other values as JSON).

The payload's CRC-32 is checked against the server's. Accessing a
single-access version consumes it: the next access fails (exit code 5).
A secret named by /path/name is read in one call (AccessSecretVersionByPath),
so a token with only the secret_access role can use it.`,
    args: [
      SECRET_ARG,
      { ...REVISION_ARG, help: `${REVISION_ARG.help} (default latest_enabled)`, optional: true },
    ],
    options: {
      raw: { type: "boolean", help: "print exactly the payload bytes, no newline added" },
      field: { type: "string", value: "NAME", help: "print one top-level field of a JSON payload" },
      ...COMMON,
    },
    examples: [
      "coffer version access /prod/db",
      "coffer version access /prod/db --field password --raw",
      "coffer version access /prod/tls-key 3 --raw > key.pem",
      "coffer version access /prod/db -o json | jq -r .data | base64 -d",
    ],
  },
  enable: stateCommand("enable"),
  disable: stateCommand("disable"),
  delete: stateCommand("delete"),
  restore: stateCommand("restore"),
  destroy: stateCommand("destroy"),
} as const satisfies Record<string, CommandSpec>;

/** `coffer version ...`. */
export const versionGroup = group({
  name: "version",
  summary:
    "add, read, enable, disable, delete (schedule for deletion) and destroy a secret's versions",
  description: `Each secret holds numbered versions (1, 2, 3...) of its payload. Commands
take the secret as /path/name or by id, then a revision: a number, "latest"
(the highest) or "latest_enabled" (the highest enabled one).`,
  children: Object.values(commands(VERSION, async () => (await import("./version-run.ts")).run)),
});
