import { buildInfo } from "./build-info.ts";

// The command line. Only what the command needs is loaded: `--version` and
// `--help` answer without loading the server.

const USAGE = `Usage: coffer-server [rotate-keys [...] | --version | --help]

Serves Coffer's SecretService and AdminService over gRPC (COFFER_GRPC_LISTEN)
and Connect and gRPC-Web (COFFER_HTTP_LISTEN). Every setting is an environment
variable (COFFER_*): with none, it serves on 127.0.0.1 with an embedded
database in ./.coffer. The settings are listed in the README's Configuration.

  rotate-keys   make a new master key active and rewrap the data keys
                (coffer-server rotate-keys --help)
  --version     print the version and the commit it was built from
`;

const [command, ...rest] = process.argv.slice(2);
if (command === "rotate-keys") {
  // It runs queries with ciphertexts and wrapped keys too: a crash must not print them.
  const { exitOnCrash } = await import("./ops/crash.ts");
  exitOnCrash();
  const { rotateKeysCommand } = await import("./commands/rotate-keys.ts");
  process.exitCode = await rotateKeysCommand(rest);
} else if (command === "--version" || command === "-v") {
  const { version, commit } = buildInfo();
  process.stdout.write(`coffer-server ${version} (commit ${commit}, node ${process.version})\n`);
} else if (command === "--help" || command === "-h") {
  process.stdout.write(USAGE);
} else if (command !== undefined) {
  process.stderr.write(`coffer-server: unknown argument ${JSON.stringify(command)}\n\n${USAGE}`);
  process.exitCode = 2;
} else {
  const { serve } = await import("./serve.ts");
  await serve();
}
