import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CliError, EXIT_CODE_HELP, ExitCode, UsageError } from "./errors.ts";
import { CONNECT_CODES, describeError, inFlagTerms } from "./rpc-errors.ts";

describe("the exit code table", () => {
  it("maps every Connect code", () => {
    const codes = Object.values(Code).filter((v): v is Code => typeof v === "number");
    expect(codes).toHaveLength(16);
    for (const code of codes) expect(CONNECT_CODES[code]).toBeDefined();
  });

  it("maps codes to what scripts branch on", () => {
    const exit = (code: Code) => CONNECT_CODES[code].exit;
    expect(exit(Code.InvalidArgument)).toBe(2);
    expect(exit(Code.OutOfRange)).toBe(2);
    expect(exit(Code.NotFound)).toBe(3);
    expect(exit(Code.Unauthenticated)).toBe(4);
    expect(exit(Code.PermissionDenied)).toBe(4);
    expect(exit(Code.FailedPrecondition)).toBe(5);
    expect(exit(Code.Aborted)).toBe(5);
    expect(exit(Code.AlreadyExists)).toBe(5);
    expect(exit(Code.Unavailable)).toBe(6);
    expect(exit(Code.DeadlineExceeded)).toBe(6);
    expect(exit(Code.ResourceExhausted)).toBe(7);
    for (const c of [
      Code.Canceled,
      Code.Unknown,
      Code.Unimplemented,
      Code.Internal,
      Code.DataLoss,
    ]) {
      expect(exit(c)).toBe(1);
    }
  });

  it("names codes as gRPC does", () => {
    expect(CONNECT_CODES[Code.FailedPrecondition].name).toBe("FAILED_PRECONDITION");
    expect(CONNECT_CODES[Code.Canceled].name).toBe("CANCELLED");
  });

  it("is listed in the help with every exit code", () => {
    for (const code of Object.values(ExitCode))
      expect(EXIT_CODE_HELP).toMatch(new RegExp(`^  ${code}  `, "m"));
  });
});

describe("describeError", () => {
  it("shows a server error's message and code name, with its exit code", () => {
    const d = describeError(new ConnectError("secret is protected", Code.FailedPrecondition));
    expect(d).toEqual({ message: "secret is protected (FAILED_PRECONDITION)", exitCode: 5 });
  });

  it("says what to do about an unreachable server or a refused token", () => {
    const down = describeError(new ConnectError("connect ECONNREFUSED", Code.Unavailable), {
      url: "http://127.0.0.1:8080",
    });
    expect(down.exitCode).toBe(6);
    expect(down.hint).toContain("is a server running at http://127.0.0.1:8080?");
    const refused = describeError(new ConnectError("bad token", Code.Unauthenticated));
    expect(refused.exitCode).toBe(4);
    expect(refused.hint).toContain("COFFER_TOKEN");
    expect(refused.hint).toContain("coffer login");
  });

  it("points usage errors without a hint at the command's help", () => {
    expect(describeError(new UsageError("bad"), { command: "coffer secret get" })).toEqual({
      message: "bad",
      hint: 'see "coffer secret get --help"',
      exitCode: 2,
    });
    expect(describeError(new UsageError("bad", "do this"), { command: "coffer x" }).hint).toBe(
      "do this",
    );
  });

  it("keeps a CLI error's exit code and turns anything else into 1", () => {
    expect(describeError(new CliError("gone", ExitCode.NotFound)).exitCode).toBe(3);
    expect(describeError(new Error("boom"))).toEqual({ message: "boom", exitCode: 1 });
  });
});

describe("inFlagTerms", () => {
  /** A refusal as the server sends it: the message, and the field and rule as a BadRequest detail. */
  const refused = (message: string) => {
    const [field = "", description = ""] = message.split(": ", 2);
    const detail = { desc: BadRequestSchema, value: { fieldViolations: [{ field, description }] } };
    return new ConnectError(message, Code.InvalidArgument, undefined, [detail]);
  };
  const rethrown = (err: unknown, fields: Record<string, string | undefined>) => {
    try {
      inFlagTerms(fields)(err);
    } catch (e) {
      return e;
    }
    throw new Error("inFlagTerms returned");
  };

  it("names the flag the user typed, with what is below the field", () => {
    const fields = {
      "first_version.data": "--from-file db.json",
      "first_version.description": "--version-description",
      description: "--description",
    };
    const data = rethrown(refused("first_version.data.password: is required (a string)"), fields);
    expect(data).toBeInstanceOf(CliError);
    expect((data as CliError).message).toBe(
      "--from-file db.json: password: is required (a string) (INVALID_ARGUMENT)",
    );
    expect((data as CliError).exitCode).toBe(ExitCode.Usage);
    expect(
      (rethrown(refused("first_version.description: must not hold NUL"), fields) as CliError)
        .message,
    ).toBe("--version-description: must not hold NUL (INVALID_ARGUMENT)");
    expect(
      (rethrown(refused("description: at most 1024 characters"), fields) as CliError).message,
    ).toBe("--description: at most 1024 characters (INVALID_ARGUMENT)");
  });

  it("passes on what no flag set, and other codes, unchanged", () => {
    const other = refused("project_id: must be a UUID");
    expect(rethrown(other, { description: "--description" })).toBe(other);
    const denied = new ConnectError("description: x", Code.PermissionDenied);
    expect(rethrown(denied, { description: "--description" })).toBe(denied);
    // A prefix of a name is not its parent field.
    const longer = refused("descriptions: x");
    expect(rethrown(longer, { description: "--description" })).toBe(longer);
  });

  it("reads the field from the error's details, not from its message", () => {
    const fields = { description: "--description", "first_version.data": "--from-file db.json" };
    // The message says nothing a parser could use; the detail says it all.
    const detailed = new ConnectError("refused", Code.InvalidArgument, undefined, [
      {
        desc: BadRequestSchema,
        value: {
          fieldViolations: [{ field: "first_version.data.port", description: "must be digits" }],
        },
      },
    ]);
    expect((rethrown(detailed, fields) as CliError).message).toBe(
      "--from-file db.json: port: must be digits (INVALID_ARGUMENT)",
    );
    // A message shaped like "field: rule" without the detail is shown as sent.
    const bare = new ConnectError("description: too long", Code.InvalidArgument);
    expect(rethrown(bare, fields)).toBe(bare);
  });
});
