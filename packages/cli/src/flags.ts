import type { OptionSet } from "./args.ts";

/**
 * The flags that several commands share, and the names their help lists, as
 * static data: the command tree, and so the parser and `--help`, reads this
 * module and never the code that acts on the flags (connection.ts,
 * payload.ts, the generated API). The names of enum values are written out
 * here for that reason; flags.test.ts checks them against the API.
 */

/** Flags of every command that talks to a server. */
export const CONNECTION_OPTIONS = {
  url: {
    type: "string",
    value: "URL",
    help: "the server; env COFFER_URL (default http://127.0.0.1:8080, or :50051 with --protocol grpc)",
    group: "connection",
  },
  protocol: {
    type: "string",
    value: "NAME",
    help: "connect (default), grpc or grpc-web; env COFFER_PROTOCOL",
    group: "connection",
  },
  region: {
    type: "string",
    value: "NAME",
    help: "the region; env COFFER_REGION (default: the server's default region)",
    group: "connection",
  },
  profile: {
    type: "string",
    value: "NAME",
    help: 'the profile in the profile file; env COFFER_PROFILE (default "default")',
    group: "connection",
  },
  "jwt-file": {
    type: "string",
    value: "FILE",
    help: "sign in with the JWT in FILE instead of a token; env COFFER_JWT_FILE (when COFFER_TOKEN is unset)",
    group: "connection",
  },
  timeout: {
    type: "string",
    value: "DURATION",
    help: "deadline of each call, e.g. 10s (default 30s)",
    group: "connection",
  },
  "ca-file": {
    type: "string",
    value: "FILE",
    help: "PEM CAs that sign the server's certificate (https:// urls); env COFFER_CA_FILE",
    group: "connection",
  },
  "cert-file": {
    type: "string",
    value: "FILE",
    help: "client certificate (PEM) for mutual TLS; env COFFER_CERT_FILE",
    group: "connection",
  },
  "key-file": {
    type: "string",
    value: "FILE",
    help: "private key of --cert-file; env COFFER_KEY_FILE",
    group: "connection",
  },
} as const satisfies OptionSet;

/** The flag naming the project. */
export const PROJECT_OPTION = {
  project: {
    type: "string",
    value: "PROJECT",
    help: "the project, by id or name; env COFFER_PROJECT, or the profile's",
    group: "connection",
  },
} as const satisfies OptionSet;

/** The flag choosing the output format. */
export const OUTPUT_OPTION = {
  output: {
    type: "string",
    short: "o",
    value: "FORMAT",
    help: "table (default) or json (the proto JSON mapping of the response)",
    group: "output",
  },
} as const satisfies OptionSet;

/** Every flag that may come before the command word, for the parser. */
export const GLOBAL_OPTIONS: OptionSet = {
  ...CONNECTION_OPTIONS,
  ...PROJECT_OPTION,
  ...OUTPUT_OPTION,
};

/** The paging flags of list commands. */
export const PAGE_OPTIONS = {
  page: { type: "string", value: "N", help: "the page to show, from 1 (default 1)" },
  "page-size": { type: "string", value: "N", help: "entries per page, 1-1000 (default 50)" },
  all: {
    type: "boolean",
    help: "every page (up to 100,000 entries), read through page tokens: each entry once even while others change",
  },
  "page-token": {
    type: "string",
    value: "TOKEN",
    help: "the page after the one that printed this token (same filters and order)",
  },
} as const satisfies OptionSet;

/** Where a payload comes from. */
export const DATA_OPTIONS = {
  data: {
    type: "string",
    value: "TEXT",
    help: "the payload as text (visible in your shell history and to ps: prefer --from-file)",
  },
  "from-file": {
    type: "string",
    value: "FILE",
    help: 'read the payload from FILE, byte for byte ("-": stdin)',
  },
} as const satisfies OptionSet;

/**
 * A random payload instead of one given: generate.ts reads these. The
 * charset names are written out here, as the enum names below are.
 */
export const GENERATE_OPTIONS = {
  generate: {
    type: "string",
    value: "LENGTH",
    optionalValue: /^[0-9]+$/,
    help: "the payload is a random value of LENGTH characters (default 32, 4 to 65536) from the OS's CSPRNG, not shown; opaque secrets only",
  },
  charset: {
    type: "string",
    value: "SET",
    help: "--generate's characters: alnum (default), alpha, numeric, hex, base64url, symbols, or the characters themselves (e.g. abc123)",
  },
  "show-generated": {
    type: "boolean",
    help: "print the generated value alone on stdout (what was done goes to stderr)",
  },
} as const satisfies OptionSet;

/**
 * What each type's payload looks like, for `--help`: the text a user puts in
 * the file given to --from-file (or in --data).
 */
export const PAYLOAD_SHAPES = `Payload shapes, by --type:
  opaque                any bytes
  certificate           a PEM file: one or more PEM blocks (certificates, then
                        optionally the private key), e.g. what openssl writes
  key_value             a flat JSON object of strings, numbers and booleans:
                        {"region": "eu", "retries": 3, "debug": false}
  basic_credentials     {"username": "...", "password": "..."} (strings)
  database_credentials  {"engine": "postgres", "host": "db", "port": "5432",
                        "dbname": "shop", "username": "app", "password": "..."}
                        (strings; engine postgres, mysql or other)
  ssh_key               an OpenSSH private key file as ssh-keygen writes it
                        (wrapped for you into {"ssh_private_key": "<the file>"}),
                        or that JSON object itself`;

/** The payload types `--type` accepts, as the API's SecretType spells them. */
export const SECRET_TYPE_NAMES = [
  "opaque",
  "certificate",
  "key_value",
  "basic_credentials",
  "database_credentials",
  "ssh_key",
] as const;

/** The roles a `--grant` names, as the API's Role spells them. */
export const ROLE_NAMES = [
  "admin",
  "full_access",
  "secret_write",
  "read_only",
  "secret_access",
] as const;

/** The token formats `coffer token create --format` accepts, as the API's TokenFormat spells them. */
export const TOKEN_FORMAT_NAMES = ["coffer", "scaleway"] as const;

/** The version statuses `--status` accepts, as the API's VersionStatus spells them. */
export const VERSION_STATUS_NAMES = [
  "enabled",
  "disabled",
  "scheduled_for_deletion",
  "deleted",
] as const;
