import { describe, expect, it } from "vitest";
import { exitCodeOf, parseSignal, startChild, stopChild } from "./child.ts";
import { CliError, UsageError } from "./errors.ts";
import { parseSelection } from "./run-secrets.ts";

describe("exitCodeOf (the shell's convention)", () => {
  it("is the child's own code, or 128 + the signal's number", () => {
    expect(exitCodeOf({ code: 0, signal: null })).toBe(0);
    expect(exitCodeOf({ code: 3, signal: null })).toBe(3);
    expect(exitCodeOf({ code: null, signal: "SIGTERM" })).toBe(143);
    expect(exitCodeOf({ code: null, signal: "SIGINT" })).toBe(130);
    expect(exitCodeOf({ code: null, signal: "SIGKILL" })).toBe(137);
  });
});

describe("parseSignal (--watch-signal)", () => {
  it("takes SIGHUP, HUP or hup, and names the flag otherwise", () => {
    expect(parseSignal("SIGHUP", "--watch-signal")).toBe("SIGHUP");
    expect(parseSignal("hup", "--watch-signal")).toBe("SIGHUP");
    expect(parseSignal("usr2", "--watch-signal")).toBe("SIGUSR2");
    expect(() => parseSignal("SIGNOPE", "--watch-signal")).toThrow(UsageError);
    expect(() => parseSignal("SIGNOPE", "--watch-signal")).toThrow(/^--watch-signal must be/);
  });
});

describe("startChild", () => {
  it("answers 127 for a command that does not exist", async () => {
    const err = await startChild("coffer-no-such-command-xyz", [], { PATH: "/nonexistent" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(127);
    expect((err as CliError).message).toMatch(/no such command/);
  });

  it("runs with exactly the environment given, and stops with SIGTERM then SIGKILL", async () => {
    const child = await startChild(
      process.execPath,
      ["-e", "process.exit(process.env.ONLY === 'x' && process.env.HOME === undefined ? 4 : 5)"],
      { ONLY: "x" },
    );
    expect(exitCodeOf(await child.exited)).toBe(4);
    const stubborn = await startChild(
      process.execPath,
      ["-e", "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"],
      {},
    );
    await new Promise((r) => setTimeout(r, 300));
    const stopped = await stopChild(stubborn, 300);
    expect(stopped).toEqual({ code: null, signal: "SIGKILL", killed: true });
  });
});

describe("parseSelection (--path and --secret)", () => {
  it("needs one of them", () => {
    expect(() => parseSelection(undefined, [])).toThrow(/--path FOLDER .* --secret SECRET/);
  });

  it("reads a bare name in --path's folder, or in /", () => {
    expect(parseSelection("/prod/", ["db", "/shared/key"])).toEqual({
      folder: "/prod",
      named: [
        { kind: "path", path: "/prod", name: "db", label: "/prod/db" },
        { kind: "path", path: "/shared", name: "key", label: "/shared/key" },
      ],
    });
    expect(parseSelection(undefined, ["db"]).named).toEqual([
      { kind: "path", path: "/", name: "db", label: "/db" },
    ]);
    const id = "0b3a6a0e-8d9c-4a57-9b43-7e1b5b1f0c11";
    expect(parseSelection(undefined, [id]).named).toEqual([{ kind: "id", id, label: id }]);
    expect(() => parseSelection("prod", [])).toThrow(/--path/);
  });
});
