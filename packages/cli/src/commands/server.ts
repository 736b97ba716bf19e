import { type CommandSpec, commands } from "../args.ts";
import { loadWithPackage } from "../errors.ts";

/** What `coffer server` takes; server-run.ts has what it does. */
export const SERVER = {
  server: {
    summary: "run a Coffer server in this process (what npm start runs)",
    description: `Serves gRPC on 127.0.0.1:50051 and Connect and gRPC-Web on
127.0.0.1:8080, on an embedded database in ./.coffer unless
COFFER_DATABASE_URL names a Postgres. Settings come from the COFFER_*
variables of the server (COFFER_GRPC_LISTEN, COFFER_HTTP_LISTEN,
COFFER_DATA_DIR, COFFER_DATABASE_URL, ...; see the configuration table of
the repository's README). On its first start on an empty database it prints
an admin token, once, on stderr: export it as COFFER_TOKEN.

Logs are JSON lines on stdout. SIGTERM or SIGINT (Ctrl-C) drains the calls
in flight and stops. Exit code 2: a setting is wrong (the message names it).`,
    options: {},
    examples: [
      "coffer server",
      "COFFER_HTTP_LISTEN=0.0.0.0:8080 COFFER_DATA_DIR=/var/lib/coffer coffer server",
    ],
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer server`. */
export const serverCommand = commands(SERVER, () =>
  loadWithPackage("@coffer/server", async () => (await import("./server-run.ts")).run),
).server;
