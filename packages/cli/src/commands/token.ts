import { type CommandSpec, commands, group } from "../args.ts";
import {
  CONNECTION_OPTIONS,
  OUTPUT_OPTION,
  PAGE_OPTIONS,
  PROJECT_OPTION,
  ROLE_NAMES,
  TOKEN_FORMAT_NAMES,
} from "../flags.ts";

/** What the commands of `coffer token` take; token-run.ts has what they do. */
export const TOKEN = {
  create: {
    summary: "create an access token; its value is printed once",
    description: `Each --grant gives the token a role on a project, optionally narrowed to
a folder: ROLE (on the current project), ROLE:/path, ROLE@PROJECT or
ROLE@PROJECT:/path. Roles: ${ROLE_NAMES.join(", ")}.

The value goes to stdout, alone on its line, so that it can be captured
(TOKEN=$(coffer token create ...)); what it is goes to stderr. It is shown
this once: the server keeps only its hash.

--format scaleway makes a Scaleway-style key instead, for Scaleway's SDKs,
scw CLI and Terraform: an access key id (SCW..., not secret) and a secret
key (a UUID, the token's value, which Coffer's own clients take as a token
too). Both go to stdout as SCW_ACCESS_KEY=... and SCW_SECRET_KEY=... lines,
the names Scaleway's tools read them from. Grants, expiry and revocation
work as for any token.`,
    args: [{ name: "NAME", help: "a name for people, 1-255 characters" }],
    options: {
      grant: { type: "string", multiple: true, value: "GRANT", help: "ROLE[@PROJECT][:/path]" },
      "global-admin": {
        type: "boolean",
        help: "a global admin grant (all projects, key rotation)",
      },
      "expires-in": { type: "string", value: "DURATION", help: "expire after this long, e.g. 30d" },
      "expires-at": {
        type: "string",
        value: "TIME",
        help: "expire at this time, e.g. 2030-01-01T00:00:00Z",
      },
      format: {
        type: "string",
        value: "NAME",
        help: `the value's form: ${TOKEN_FORMAT_NAMES.join(", ")} (default coffer; scaleway: an access key id and a secret key)`,
      },
      ...PROJECT_OPTION,
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer token create web-sidecar --grant secret_access:/prod/web",
      "coffer token create ci --grant secret_write --grant read_only@staging --expires-in 30d",
      "coffer token create terraform --grant full_access:/infra --format scaleway > scw.env",
    ],
  },
  list: {
    summary: "list tokens (never their values)",
    description: `Lists the tokens with a grant on the current project, if one is set
(--project, COFFER_PROJECT or the profile), else every token the caller may see.`,
    options: {
      inactive: { type: "boolean", help: "include revoked and expired tokens" },
      "all-projects": { type: "boolean", help: "ignore the current project" },
      ...PAGE_OPTIONS,
      ...PROJECT_OPTION,
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
  },
  revoke: {
    summary: "revoke a token: every later call with it is refused",
    args: [
      { name: "TOKEN_ID", help: 'the token\'s id (from "coffer token list"), never its value' },
    ],
    options: { ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer token ...`. */
export const tokenGroup = group({
  name: "token",
  summary: "create, list and revoke access tokens (needs an admin token)",
  children: Object.values(commands(TOKEN, async () => (await import("./token-run.ts")).run)),
});
