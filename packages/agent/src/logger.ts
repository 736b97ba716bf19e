import pino, { type Logger } from "pino";
import type { AgentConfig } from "./config.ts";

export type { Logger } from "pino";

/**
 * Structured JSON logs on stdout, one line per event. Fields that could hold
 * credentials are redacted as a second line of defence: the agent never logs
 * payloads or tokens in the first place.
 */
export function createAgentLogger(
  level: AgentConfig["logLevel"],
  destination?: pino.DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "coffer-agent" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["*.data", "*.payload", "*.token", "*.authorization", "*.password"],
      censor: "[redacted]",
    },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
