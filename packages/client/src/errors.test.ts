import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { fieldViolations, SecretService } from "./index.ts";

/** A SecretService whose CreateSecret refuses with `error`, over Connect's wire format. */
function refusing(error: ConnectError) {
  const transport = createRouterTransport(({ service }) => {
    service(SecretService, {
      createSecret() {
        throw error;
      },
    });
  });
  return createClient(SecretService, transport);
}

async function refusal(error: ConnectError): Promise<unknown> {
  return refusing(error)
    .createSecret({})
    .then(
      () => {
        throw new Error("the call succeeded");
      },
      (e: unknown) => e,
    );
}

describe("fieldViolations", () => {
  it("reads the fields and rules of the google.rpc.BadRequest details", async () => {
    const err = await refusal(
      new ConnectError("first_version.data.port: must be digits", Code.InvalidArgument, undefined, [
        {
          desc: BadRequestSchema,
          value: {
            fieldViolations: [
              { field: "first_version.data.port", description: "must be digits" },
              { field: "description", description: "at most 1024 characters" },
            ],
          },
        },
      ]),
    );
    expect(fieldViolations(err)).toEqual([
      { field: "first_version.data.port", description: "must be digits" },
      { field: "description", description: "at most 1024 characters" },
    ]);
  });

  it("is empty without such details, and for what is not a ConnectError", async () => {
    // A message that looks like "field: rule" is not read: only the details count.
    expect(
      fieldViolations(
        await refusal(new ConnectError("description: too long", Code.InvalidArgument)),
      ),
    ).toEqual([]);
    expect(fieldViolations(new Error("description: too long"))).toEqual([]);
    expect(fieldViolations(undefined)).toEqual([]);
  });
});
