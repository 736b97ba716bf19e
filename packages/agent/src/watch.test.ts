import type { WatchSecretsResponse } from "@coffer/client";
import { WatchEventKind } from "@coffer/client";
import { describe, expect, it } from "vitest";
import { FakeCoffer, memoryLogger } from "./fake-coffer.ts";
import { runWatch } from "./watch.ts";

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("runWatch across a token renewal", () => {
  it("passes each event once while the old stream goes on until the new one has connected", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v1" });
    let current = "token-1";
    let gate: Promise<void> | undefined;
    let release: () => void = () => {};
    // The token a connection gets is the current one when it asks; the
    // renewed stream is held before it connects until `release`.
    const client = fake.clientWith(async () => {
      const token = current;
      await gate;
      return token;
    });
    let renewed: () => void = () => {};
    const messages: WatchSecretsResponse[] = [];
    const connections: boolean[] = [];
    const log = memoryLogger();
    const abort = new AbortController();
    const done = runWatch({
      client,
      logger: log.logger,
      projectId: fake.projectId,
      region: "",
      selectors: [],
      heartbeatIntervalMs: 60_000,
      cursor: "",
      signal: abort.signal,
      onMessage: (event) => messages.push(event),
      onConnection: (up) => connections.push(up),
      onTokenRenewed: (listener) => {
        renewed = listener;
        return () => {};
      },
    });
    const revisions = () =>
      messages.filter((m) => m.kind !== WatchEventKind.HEARTBEAT).map((m) => m.revision);
    await until(() => messages.length === 1);
    fake.addVersion(id, "v2");
    await until(() => revisions().length === 1);

    current = "token-2";
    gate = new Promise((r) => {
      release = r;
    });
    renewed();
    await until(() => fake.watchCalls.length === 2);
    // The renewed stream is connecting: the old one still passes events on.
    fake.addVersion(id, "v3");
    fake.addVersion(id, "v4");
    await until(() => revisions().length === 3);
    release();
    await until(() =>
      log.lines.some((l) => l.msg === "watch moved to a stream with the renewed token"),
    );
    // The old token expires: its stream is already closed, nothing is lost.
    fake.expireToken("token-1");
    fake.addVersion(id, "v5");
    await until(() => revisions().length === 4);
    await new Promise((r) => setTimeout(r, 50));

    expect(revisions()).toEqual([2, 3, 4, 5]);
    const cursors = messages.map((m) => Number(m.cursor));
    expect(cursors).toEqual([...cursors].sort((a, b) => a - b));
    expect(fake.watchTokens).toEqual(["token-1", "token-2"]);
    expect(connections).toEqual([true]);
    abort.abort();
    await done;
    expect(connections).toEqual([true, false]);
  });

  it("keeps the current stream when the renewed one cannot connect", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v1" });
    let current = "token-1";
    const client = fake.clientWith(() => current);
    let renewed: () => void = () => {};
    const messages: WatchSecretsResponse[] = [];
    const log = memoryLogger();
    const abort = new AbortController();
    const done = runWatch({
      client,
      logger: log.logger,
      projectId: fake.projectId,
      region: "",
      selectors: [],
      heartbeatIntervalMs: 60_000,
      cursor: "",
      signal: abort.signal,
      onMessage: (event) => messages.push(event),
      onTokenRenewed: (listener) => {
        renewed = listener;
        return () => {};
      },
    });
    await until(() => messages.length === 1);
    current = "token-bad";
    fake.expireToken("token-bad");
    renewed();
    await until(() =>
      log.lines.some(
        (l) =>
          l.msg === "cannot open a watch stream with the renewed token; keeping the current one",
      ),
    );
    fake.addVersion(id, "v2");
    await until(() => messages.length === 2);
    expect(fake.watchTokens).toEqual(["token-1"]);
    abort.abort();
    await done;
  });
});
