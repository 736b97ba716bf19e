import { parseAgentConfig } from "@coffer/agent";
import { loadConfig } from "@coffer/server";
import { describe, expect, it } from "vitest";
import { parseDuration } from "./refs.ts";

/**
 * One table of durations, read by the three surfaces users write them in:
 * a server setting (COFFER_DELETION_WINDOW, 0 to 3650 days), an agent setting
 * (heartbeat_interval, 1 s to 5 min) and a CLI flag (--ttl, any length). All
 * three must agree on what is a duration and what it is worth; a surface may
 * still refuse a well-formed value outside its setting's range, and then says
 * so with the range, not the grammar.
 *
 * This lives in the CLI's tests because the CLI is the one package that
 * depends on both the server and the agent.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const valid: [string, number][] = [
  ["500ms", 500],
  ["1500ms", 1500],
  ["30s", 30 * SECOND],
  ["5m", 5 * MINUTE],
  ["1m30s", 90 * SECOND],
  ["1h", HOUR],
  ["1h30m", HOUR + 30 * MINUTE],
  ["7d", 7 * DAY],
  ["1d12h", DAY + 12 * HOUR],
  ["2m500ms", 2 * MINUTE + 500],
  [" 45s ", 45 * SECOND],
];

const invalid = [
  "10",
  "1 h",
  "1.5h",
  "h",
  "-5s",
  "5S",
  "1w",
  "30 s",
  "1h 30m",
  "ms",
  "99999999999999999999d",
];

const GRAMMAR = "must be a duration like 500ms, 30s, 5m, 1h30m or 7d";

/** Each surface: the value it read, or the message it refused it with. */
type Outcome = { ms: number } | { error: string };

const server = (text: string): Outcome => {
  try {
    return { ms: loadConfig({ COFFER_DELETION_WINDOW: text }).deletionWindowMs };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

const agentConfig = (text: string) => `
server:
  url: http://127.0.0.1:8080
project_id: 6f1c2a9e-3b1d-4c55-9e2f-0a1b2c3d4e5f
state_file: state.json
heartbeat_interval: ${JSON.stringify(text)}
secrets:
  - name: db
    destination: db.txt
`;

const agent = async (text: string): Promise<Outcome> => {
  try {
    const config = await parseAgentConfig(agentConfig(text), {
      baseDir: "/etc/coffer",
      env: { COFFER_TOKEN: "tok-from-env" },
      lookupId: async () => undefined,
    });
    return { ms: config.heartbeatIntervalMs };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

const cli = (text: string): Outcome => {
  try {
    return { ms: parseDuration(text, "--ttl") };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

const surfaces = [
  { name: "server", setting: "COFFER_DELETION_WINDOW: ", min: 0, max: 3650 * DAY, read: server },
  { name: "agent", setting: "heartbeat_interval: ", min: SECOND, max: 5 * MINUTE, read: agent },
  { name: "cli", setting: "--ttl ", min: 0, max: Number.MAX_SAFE_INTEGER, read: cli },
];

describe("the duration grammar", () => {
  for (const s of surfaces) {
    describe(s.name, () => {
      it.each(valid)("reads %j as %i ms, or refuses it by its range only", async (text, ms) => {
        const outcome = await s.read(text);
        if (ms >= s.min && ms <= s.max) {
          expect(outcome).toEqual({ ms });
        } else {
          expect(outcome).toEqual({
            error: expect.stringContaining(
              `${s.setting}must be a duration between ${s.min} ms and ${s.max} ms (got ${JSON.stringify(text)})`,
            ),
          });
        }
      });

      it.each(invalid)("refuses %j, naming the setting and the grammar", async (text) => {
        expect(await s.read(text)).toEqual({
          error: expect.stringContaining(`${s.setting}${GRAMMAR} (got ${JSON.stringify(text)})`),
        });
      });
    });
  }
});
