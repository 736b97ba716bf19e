import pino, { type Logger } from "pino";
import type { Config } from "./config.ts";
import { withoutQueryParameters } from "./db/errors.ts";

/**
 * Structured JSON logs on stdout. Fields that could hold credentials are
 * redacted as a second line of defence: the code never logs payloads or
 * tokens in the first place.
 */
export function createLogger(level: Config["logLevel"]): Logger {
  return pino({
    level,
    base: { service: "coffer-server" },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Query errors carry their parameters (ciphertexts, wrapped keys): never log them.
    serializers: { err: (err) => pino.stdSerializers.err(withoutQueryParameters(err) as Error) },
    redact: {
      paths: ["*.data", "*.payload", "*.token", "*.authorization", "*.password"],
      censor: "[redacted]",
    },
  });
}
