import { type CommandSpec, commands } from "../args.ts";
import { CONNECTION_OPTIONS, PROJECT_OPTION } from "../flags.ts";

/** What `coffer run` takes; run-run.ts has what it does. */
export const RUN = {
  run: {
    summary: "run a program with secrets in its environment (never written to disk)",
    description: `Reads the newest enabled version of each secret (CRC-32 checked), puts
them into the environment of COMMAND, runs it with this terminal's stdin,
stdout and stderr, and exits with its exit code (128 + the signal's number
when a signal killed it). Nothing is written to disk.

Which secrets: every secret directly in the folder --path (not its
subfolders), and/or each --secret (/path/name, an id, or a bare name in
--path's folder, default /).

Variable names: upper-case, every character outside A-Z, 0-9 and _ becomes
_, and a name starting with a digit gets a _ in front: db-password is
DB_PASSWORD. --prefix P goes before every name.
  opaque, certificate   one variable named after the secret, the payload as text
  key_value             one variable per key, named after the key alone
  basic_credentials,    one variable per field, named after the secret and the
  database_credentials  field: db -> DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD...
  ssh_key               one variable named after the secret: the private key
Two secrets landing on one name are an error, before COMMAND starts.
Secrets override variables of the same name in this environment; COFFER_*
variables (the token among them) are not passed to COMMAND.

Single-access secrets are refused unless --single-access is given (they are
then consumed). SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are
passed on to COMMAND.

--watch follows the secrets' changes (WatchSecrets): on a change the values
are read again and, when they differ, COMMAND is restarted (SIGTERM, then
SIGKILL after --grace) with the new environment, or sent --watch-signal
instead. A change that cannot be read (an error) leaves COMMAND running.`,
    args: [
      {
        name: "COMMAND",
        help: 'the program and its arguments, after "--"; no shell runs it (use sh -c "...")',
        variadic: true,
      },
    ],
    options: {
      path: {
        type: "string",
        value: "FOLDER",
        help: "every secret directly in this folder (not its subfolders)",
      },
      secret: {
        type: "string",
        multiple: true,
        value: "SECRET",
        help: "this secret: /path/name, an id, or a name in --path's folder (default /)",
      },
      prefix: {
        type: "string",
        value: "PREFIX",
        help: "put PREFIX before every variable name (e.g. APP_)",
      },
      "single-access": {
        type: "boolean",
        help: "read single-access secrets too, consuming them (refused otherwise)",
      },
      watch: {
        type: "boolean",
        help: "restart COMMAND when a secret changes",
      },
      "watch-signal": {
        type: "string",
        value: "SIGNAL",
        help: "with --watch: send this signal (e.g. SIGHUP) instead of restarting; the environment stays as it was",
      },
      grace: {
        type: "string",
        value: "DURATION",
        help: "with --watch: how long a restart waits after SIGTERM before SIGKILL (default 10s)",
      },
      quiet: {
        type: "boolean",
        short: "q",
        help: "print nothing of coffer's own on stderr but errors",
      },
      ...PROJECT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer run --path /prod -- node server.js",
      "coffer run --secret /prod/db --secret /shared/api-key -- ./migrate.sh",
      "coffer run --path /prod --watch -- node server.js",
      `coffer run --path /prod -- sh -c 'psql "postgres://$DB_USERNAME:$DB_PASSWORD@$DB_HOST/$DB_DBNAME"'`,
    ],
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer run`. */
export const runCommand = commands(RUN, async () => (await import("./run-run.ts")).run).run;
