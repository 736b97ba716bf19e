import pino, { type Logger } from "pino";
import type { Config } from "./config.ts";
import { withoutQueryParameters } from "./db/errors.ts";

/**
 * Structured JSON logs on stdout (or `destination`, for tests). Fields that
 * could hold credentials are redacted as a second line of defence: the code
 * never logs payloads or tokens in the first place.
 */
export function createLogger(
  level: Config["logLevel"],
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      level,
      base: { service: "coffer-server" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Query errors carry their parameters (ciphertexts, wrapped keys): never log them.
      serializers: { err: (err) => pino.stdSerializers.err(withoutQueryParameters(err) as Error) },
      redact: {
        paths: ["*.data", "*.payload", "*.token", "*.authorization", "*.password"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}

/**
 * The same logger without the redaction pass, for lines whose every field
 * the caller builds from values that hold no secret (the call line: method,
 * code, timing, ids, peer). With the pass a call line costs pino about
 * 11 µs, without it 4 (in a loop); in a server at the default level it
 * was 8–12 of the call line's 14–24 µs of CPU per call (bench/RESULTS.md,
 * access reading of 2026-12-06, eighth session). Never for a line that
 * carries an object from elsewhere (a request, an error, a row).
 */
export function unredacted(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}
