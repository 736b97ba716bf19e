import { type CommandSpec, commands, group } from "../args.ts";
import {
  CONNECTION_OPTIONS,
  OUTPUT_OPTION,
  PAGE_OPTIONS,
  PROJECT_OPTION,
  ROLE_NAMES,
} from "../flags.ts";

/** What the commands of `coffer binding` take; binding-run.ts has what they do. */
export const BINDING = {
  create: {
    summary: "grant roles to the workloads whose JWTs match conditions",
    description: `A binding maps the JWTs of one trusted issuer whose claims match every
condition to grants: a JWT that matches is exchanged for a Coffer token with
those grants. Needs admin on every project it grants on.

--claim KEY=VALUE is an exact condition, --claim-glob KEY=PATTERN a glob
("*" any run of characters, "/" and ":" included; "?" one character). KEY is
a top-level claim ("sub", "repository", "ref") or a JSON Pointer into nested
claims ("/kubernetes.io/namespace"). A list claim matches when one of its
items does; a missing claim never matches. At least one condition.

Each --grant is written as for "coffer token create": ROLE (on the current
project), ROLE:/path, ROLE@PROJECT or ROLE@PROJECT:/path. Roles:
${ROLE_NAMES.join(", ")}.

--ttl is the longest life of the tokens it issues, 1m to 1h (default 15m).`,
    options: {
      name: { type: "string", value: "NAME", help: "a name for people, 1-255 characters" },
      issuer: {
        type: "string",
        value: "ISSUER",
        help: 'the trusted issuer, by id or name ("coffer issuer list")',
      },
      claim: { type: "string", multiple: true, value: "KEY=VALUE", help: "an exact condition" },
      "claim-glob": {
        type: "string",
        multiple: true,
        value: "KEY=PATTERN",
        help: "a glob condition (* and ?)",
      },
      grant: { type: "string", multiple: true, value: "GRANT", help: "ROLE[@PROJECT][:/path]" },
      ttl: { type: "string", value: "DURATION", help: "longest token life, 1m-1h (default 15m)" },
      ...PROJECT_OPTION,
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer binding create --name web-prod --issuer prod-cluster --claim /kubernetes.io/namespace=prod --claim /kubernetes.io/serviceaccount/name=web --grant secret_access:/prod/web",
      "coffer binding create --name deploy --issuer github --claim repository=acme/shop --claim-glob 'ref=refs/tags/v*' --grant read_only:/deploy --ttl 10m",
    ],
  },
  list: {
    summary: "list identity bindings",
    description: `Lists the bindings with a grant on the current project, if one is set
(--project, COFFER_PROJECT or the profile), else every binding the caller may
see (all of them for a global admin); --issuer narrows the list.`,
    options: {
      issuer: { type: "string", value: "ISSUER", help: "only this issuer's (id or name)" },
      "all-projects": { type: "boolean", help: "ignore the current project" },
      ...PAGE_OPTIONS,
      ...PROJECT_OPTION,
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
  },
  delete: {
    summary: "delete a binding and revoke the tokens exchanged through it",
    args: [{ name: "BINDING_ID", help: 'the binding\'s id (from "coffer binding list")' }],
    options: { ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer binding ...`. */
export const bindingGroup = group({
  name: "binding",
  summary: "bind workload identities (JWT claims) to grants (needs an admin token)",
  children: Object.values(commands(BINDING, async () => (await import("./binding-run.ts")).run)),
});
