import { SecretService, WatchEventKind } from "@coffer/api";
import { createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { cofferOver } from "./coffer.ts";
import { createFake } from "./fake-coffer.ts";

describe("cofferOver", () => {
  it("gives the helpers the client's project and region unless a call names its own", async () => {
    const seen: unknown[] = [];
    const fake = createFake({
      async *watch(req) {
        seen.push({ projectId: req.projectId, region: req.region });
        yield { kind: WatchEventKind.SECRET_CREATED, cursor: "c1" };
      },
    });
    const rpc = createClient(
      SecretService,
      fake.transport([
        (next) => (req) => {
          if (!req.stream) seen.push(req.message);
          return next(req);
        },
      ]),
    );
    const coffer = cofferOver(rpc, { projectId: "p1", region: "eu" });
    await coffer.access("/a/b");
    await coffer.access("/a/b", { projectId: "p2", region: undefined });
    for await (const _ of coffer.watch()) break;
    expect(seen).toMatchObject([
      { projectId: "p1", region: "eu" },
      { projectId: "p2", region: "eu" },
      { projectId: "p1", region: "eu" },
    ]);
    expect(coffer.rpc).toBe(rpc);
  });
});
