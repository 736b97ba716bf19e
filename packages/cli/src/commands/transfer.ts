import { type CommandSpec, commands } from "../args.ts";
import { CONNECTION_OPTIONS, OUTPUT_OPTION, PROJECT_OPTION } from "../flags.ts";

/**
 * What `coffer import` and `coffer export` take; import-run.ts and
 * export-run.ts have what they do. The file rules (the .env grammar, the
 * type of each value, duplicates) are the console's bulk import's,
 * shared through `@coffer/console/import`.
 */

const FOLDER = {
  path: {
    type: "string",
    value: "FOLDER",
    help: "the folder, e.g. /prod (only the secrets directly in it, not in folders below)",
  },
} as const;

const FORMAT_NAMES = "dotenv, json or yaml";

export const TRANSFER = {
  import: {
    summary: "import a .env, JSON or YAML file into a folder: one secret per entry",
    description: `Reads FILE ("-": stdin) and shows what each entry becomes, as the web
console's bulk import does: one row per entry with its name, its type and
what is done with it:

  create       a new secret, with the value as its version 1 (one call: a
               secret is never left without its value)
  new version  an existing secret gets the value as a new enabled version
               (only with --new-versions, when the value fits its type)
  unchanged    the existing secret's newest enabled version holds this value
  exists       a secret of this name is already there; left as it is
  refused      the entry cannot be imported, with the reason (a bad name, an
               empty or too large value, a list or nested object, a key given
               again later in the file: the later one is imported)

Then, unless --dry-run, it imports the rows to create and add, and reports
each (exit code 1 if any failed). Without --yes it asks first, or refuses
when it cannot ask (no terminal).

A string, number or boolean becomes an opaque secret; a flat object (of
strings, numbers and booleans) a key_value secret. The format comes from
--format, else the file's name (.env, *.env, .env.*, *.json, *.yaml, *.yml),
else the text itself. The .env rules: see the README, "Importing and
exporting". A file that does not parse is refused as a whole, naming the
line and the rule, never its text.

To tell "unchanged" from "exists", the newest enabled value of each existing
secret is read and compared, when the token may read payloads in the folder
(admin, full_access or secret_access): each read is an access in the audit
trail. Single-access secrets are never read. --no-compare reads none.`,
    args: [{ name: "FILE", help: 'the file to import ("-": stdin)' }],
    options: {
      ...FOLDER,
      format: { type: "string", value: "FORMAT", help: `the file's format: ${FORMAT_NAMES}` },
      "dry-run": { type: "boolean", help: "show what would be done; change nothing" },
      "new-versions": {
        type: "boolean",
        help: "add a new version to existing secrets whose value differs (or was not compared)",
      },
      "no-compare": {
        type: "boolean",
        help: "do not read existing values to find unchanged ones (no payload reads)",
      },
      yes: { type: "boolean", short: "y", help: "import without asking" },
      ...PROJECT_OPTION,
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer import .env --path /prod --dry-run",
      "coffer import .env --path /prod --yes",
      "coffer import secrets.yaml --path /prod --new-versions --yes",
      "vault kv get -format=json secret/app | jq .data.data | coffer import - --format json --path /app --yes",
    ],
  },
  export: {
    summary: "write a folder's secrets as a .env, JSON or YAML file (stdout, or a 0600 file)",
    description: `Reads the newest enabled version of each secret directly in FOLDER and
writes them, by name, to stdout or to --output-file, which is created with
mode 0600 and never overwritten unless --force (then it is replaced by a
new 0600 file). A secret without an enabled version is left out, with a
note on stderr.

Single-access secrets are refused, naming them, before anything is read:
reading one consumes it. --single-access exports them (and consumes them).

Values: an opaque or certificate secret is its text (a payload that is not
UTF-8 text is refused, naming it); key_value and the other JSON types are an
object in JSON and YAML, and their JSON text in .env. A .env value is
always quoted so that "coffer import" reads it back exactly: single quotes,
or double quotes with \\n, \\r, \\", \\\\ and \\$ escaped when it holds a
single quote or a line break.`,
    options: {
      ...FOLDER,
      format: {
        type: "string",
        value: "FORMAT",
        help: `${FORMAT_NAMES} (default: from --output-file's name)`,
      },
      "output-file": {
        type: "string",
        value: "FILE",
        help: "write to FILE, created with mode 0600 (default: stdout)",
      },
      force: { type: "boolean", help: "replace --output-file if it exists" },
      "single-access": {
        type: "boolean",
        help: "export single-access secrets too (reading them consumes them)",
      },
      ...PROJECT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer export --path /prod --format dotenv > .env",
      "coffer export --path /prod --output-file prod.yaml",
      "coffer export --path /prod --format json | jq -r .DATABASE_URL",
    ],
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer import`. */
export const importCommand = commands({ import: TRANSFER.import }, async () => ({
  import: (await import("./import-run.ts")).run,
})).import;

/** `coffer export`. */
export const exportCommand = commands({ export: TRANSFER.export }, async () => ({
  export: (await import("./export-run.ts")).run,
})).export;
