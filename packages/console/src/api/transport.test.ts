import { create } from "@bufbuild/protobuf";
import { ListRegionsResponseSchema, SecretService } from "@coffer/api";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { bearer } from "./transport.ts";

function serverSeeing(headers: (string | null)[], token: () => string | undefined) {
  const transport = createRouterTransport(
    ({ service }) => {
      service(SecretService, {
        listRegions: (_req, ctx) => {
          headers.push(ctx.requestHeader.get("authorization"));
          return create(ListRegionsResponseSchema, { regions: ["fr-par"] });
        },
      });
    },
    { transport: { interceptors: [bearer(token)] } },
  );
  return createClient(SecretService, transport);
}

describe("bearer", () => {
  it("sends the session's token, read at each call", async () => {
    const seen: (string | null)[] = [];
    let token: string | undefined = "coffer_a";
    const client = serverSeeing(seen, () => token);
    await client.listRegions({});
    token = "coffer_b";
    await client.listRegions({});
    expect(seen).toEqual(["Bearer coffer_a", "Bearer coffer_b"]);
  });

  it("keeps a call's own authorization (the sign-in check of a pasted token)", async () => {
    const seen: (string | null)[] = [];
    const client = serverSeeing(seen, () => undefined);
    await client.listRegions({}, { headers: { authorization: "Bearer pasted" } });
    expect(seen).toEqual(["Bearer pasted"]);
  });

  it("sends nothing without a token", async () => {
    const seen: (string | null)[] = [];
    const client = serverSeeing(seen, () => undefined);
    const error = await client.listRegions({}).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(seen).toEqual([]);
  });
});
