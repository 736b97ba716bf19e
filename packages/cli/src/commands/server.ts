import type { Config } from "@coffer/server";
import { command } from "../args.ts";
import { CliError, ExitCode } from "../errors.ts";

/**
 * `coffer server`: the server in this process, as `npm start` runs it
 * (loadConfig -> startServer), JSON logs on stdout, the first admin token on
 * stderr, drained on SIGTERM or SIGINT. @coffer/server is imported only
 * here, so other commands do not load the database drivers.
 */
export const serverCommand = command({
  name: "server",
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
  async run(ctx) {
    const { loadConfig, startServer } = await import("@coffer/server");
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig(ctx.env);
    } catch (err) {
      throw asStartError(err);
    }
    const logger = await serverLogger(config.logLevel);
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer(config, logger);
    } catch (err) {
      logger.fatal({ err }, "cannot start");
      throw asStartError(err);
    }
    await new Promise<void>((resolve, reject) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        logger.info({ signal }, "shutting down: draining calls");
        server.stop().then(resolve, reject);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    });
    return ExitCode.Ok;
  },
});

/** A configuration or key problem is the operator's to fix: say what, no stack (exit 2). */
function asStartError(err: unknown): CliError {
  const e = err as Error;
  if (e?.name === "ConfigError" || e?.name === "KeyRingError") {
    return new CliError(`cannot start the server: ${e.message}`, ExitCode.Usage);
  }
  return new CliError(`cannot start the server: ${e?.message ?? String(err)}`, ExitCode.Failure);
}

/**
 * The server's own logger (JSON lines on stdout, credentials redacted, query
 * parameters stripped from database errors), so that `coffer server` logs
 * exactly what `npm start` logs.
 */
async function serverLogger(level: Config["logLevel"]) {
  const { createLogger } = await import("@coffer/server");
  return createLogger(level);
}
