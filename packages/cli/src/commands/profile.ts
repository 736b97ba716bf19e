import { type CommandSpec, commands, group, type OptionSet } from "../args.ts";
import { PROFILE_KEYS } from "../profile.ts";

const PROFILE_OPTION = {
  profile: {
    type: "string",
    value: "NAME",
    help: 'the profile to change; env COFFER_PROFILE (default "default")',
  },
} as const satisfies OptionSet;

export const SETTING_OPTIONS = {
  url: { type: "string", value: "URL", help: "the server, e.g. http://127.0.0.1:8080" },
  token: { type: "string", value: "TOKEN", help: 'the token ("-": read it from stdin)' },
  protocol: { type: "string", value: "NAME", help: "connect, grpc or grpc-web" },
  project: { type: "string", value: "PROJECT", help: "the default project (id or name)" },
  region: { type: "string", value: "NAME", help: "the default region" },
  "ca-file": { type: "string", value: "FILE", help: "PEM CAs of the server's certificate" },
  "cert-file": { type: "string", value: "FILE", help: "client certificate for mutual TLS" },
  "key-file": { type: "string", value: "FILE", help: "private key of --cert-file" },
} as const satisfies OptionSet;

/** What `coffer login` and the commands of `coffer profile` take; profile-run.ts has what they do. */
export const PROFILE = {
  login: {
    summary: "check a token against a server and store both in the profile file",
    description: `Stores the url and the token (and optionally a project) in the profile
file, ~/.config/coffer/config.json by default (COFFER_CONFIG to change it),
written with mode 0600. The token is checked with one call first; a token
the server refuses is not stored (exit code 4). Later commands use the
profile; flags and COFFER_* variables still override it.`,
    options: {
      ...SETTING_OPTIONS,
      ...PROFILE_OPTION,
      "no-verify": { type: "boolean", help: "store without checking" },
    },
    examples: [
      "coffer login --url http://127.0.0.1:8080 --token coffer_...",
      "coffer login --url https://coffer.internal:8080 --token - < token.txt --project demo",
    ],
  },
  set: {
    summary: "set or remove keys of a profile",
    description: `Changes only the keys named; --unset KEY removes one (${PROFILE_KEYS.join(", ")}).
The file is written with mode 0600. Nothing is checked against a server: see "coffer login".`,
    options: {
      ...SETTING_OPTIONS,
      unset: { type: "string", multiple: true, value: "KEY", help: "remove this key" },
      ...PROFILE_OPTION,
    },
    examples: [
      "coffer profile set --project 6f1c2a9e-3b1d-4c55-9e2f-0a1b2c3d4e5f",
      "coffer profile set --unset region",
    ],
  },
  show: {
    summary: "show a profile (the token hidden) and where the file is",
    options: PROFILE_OPTION,
  },
  list: {
    summary: "list the profiles",
    options: {},
  },
  delete: {
    summary: "remove a profile from the file",
    args: [{ name: "NAME", help: "the profile to remove" }],
    options: {},
  },
} as const satisfies Record<string, CommandSpec>;

const { login, ...profile } = commands(PROFILE, async () => (await import("./profile-run.ts")).run);

/** `coffer login`. */
export const loginCommand = login;

/** `coffer profile ...`. */
export const profileGroup = group({
  name: "profile",
  summary: "manage the profile file (url, token, project)",
  description: `The profile file holds named profiles of connection settings, so that a
token need not live in the environment: ~/.config/coffer/config.json, or
$XDG_CONFIG_HOME/coffer/config.json, or the file COFFER_CONFIG names. It is
written with mode 0600 and refused when others can read it. Each setting is
taken from its flag, else its COFFER_* variable, else the profile.`,
  children: Object.values(profile),
});
