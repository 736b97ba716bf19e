import { describe, expect, it } from "vitest";
import { createLogger, unredacted } from "./logger.ts";

function capture(level: "info" | "warn" = "info") {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(level, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

const credentials = {
  data: "d",
  payload: "p",
  token: "t",
  authorization: "Bearer t",
  password: "pw",
  name: "kept",
};
const redacted = {
  data: "[redacted]",
  payload: "[redacted]",
  token: "[redacted]",
  authorization: "[redacted]",
  password: "[redacted]",
  name: "kept",
};

describe("createLogger", () => {
  it("redacts credential-named fields of a logged object, as a second line of defence", () => {
    const { logger, lines } = capture();
    logger.info({ req: credentials }, "x");
    expect(lines).toEqual([expect.objectContaining({ service: "coffer-server", req: redacted })]);
  });
});

describe("unredacted", () => {
  it("writes the same lines at the same level, without the pass; the logger it came from still redacts", () => {
    const { logger, lines } = capture("warn");
    const plain = unredacted(logger);
    plain.info({ method: "m" }, "below the level");
    plain.warn({ method: "m", request_id: "r" }, "call");
    // Why it is only for lines whose every field is known: nothing is redacted.
    plain.warn({ req: { token: "not-a-credential" } }, "y");
    logger.warn({ req: credentials }, "x");
    expect(lines).toEqual([
      {
        level: 40,
        time: expect.any(String),
        service: "coffer-server",
        method: "m",
        request_id: "r",
        msg: "call",
      },
      expect.objectContaining({ req: { token: "not-a-credential" } }),
      expect.objectContaining({ level: 40, req: redacted }),
    ]);
  });
});
