import pino, { type Logger } from "pino";
import type { Config } from "./config.ts";

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
    redact: {
      paths: ["*.data", "*.payload", "*.token", "*.authorization", "*.password"],
      censor: "[redacted]",
    },
  });
}
