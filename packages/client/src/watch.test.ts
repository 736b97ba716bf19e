import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  SecretService,
  WatchEventKind,
  type WatchSecretsRequest,
  type WatchSecretsResponseSchema,
} from "@coffer/api";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createFake } from "./fake-coffer.ts";
import { type ReconnectEvent, type WatchEvent, type WatchOptions, watchSecrets } from "./watch.ts";

const K = WatchEventKind;
type Message = MessageInitShape<typeof WatchSecretsResponseSchema>;
type Connection = (req: WatchSecretsRequest, ctx: HandlerContext) => AsyncIterable<Message>;

const heartbeat = (cursor: string): Message => ({ kind: K.HEARTBEAT, cursor });
const created = (cursor: string, name = "db"): Message => ({
  kind: K.VERSION_CREATED,
  cursor,
  name,
  path: "/prod",
  revision: 1,
});

/** Stays open until the client goes away. */
async function untilClosed(ctx: HandlerContext): Promise<void> {
  if (ctx.signal.aborted) return;
  await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
}

/**
 * A watch over a fake whose nth connection runs `connections[n]` (the last
 * one again past the end). Records what each connection asked for.
 */
function scripted(connections: Connection[], options: Omit<WatchOptions, "projectId"> = {}) {
  const requests: WatchSecretsRequest[] = [];
  const reconnects: ReconnectEvent[] = [];
  const fake = createFake({
    watch: (req, ctx) => {
      requests.push(req);
      const run = connections[Math.min(requests.length, connections.length) - 1] as Connection;
      return run(req, ctx);
    },
  });
  const client = createClient(SecretService, fake.transport([]));
  const abort = new AbortController();
  const watch = watchSecrets(client, {
    projectId: "0f8fad5b-d9cb-469f-a165-70867728950e",
    backoff: { initialDelayMs: 2, maxDelayMs: 2 },
    signal: abort.signal,
    onReconnect: (r) => reconnects.push(r),
    ...options,
  });
  return { watch, requests, reconnects, abort };
}

/** Reads `n` events, then aborts the watch and waits for the iteration to end. */
async function take(
  s: ReturnType<typeof scripted>,
  n: number,
): Promise<{ events: WatchEvent[]; error?: unknown }> {
  const events: WatchEvent[] = [];
  try {
    for await (const event of s.watch) {
      events.push(event);
      if (events.length === n) s.abort.abort();
    }
    return { events };
  } catch (error) {
    return { events, error };
  }
}

const summary = (events: WatchEvent[]) => events.map((e) => `${K[e.kind]} ${e.cursor}`);

describe("watchSecrets", () => {
  it("hides heartbeats, yields changes and RESYNC, and resumes from the last cursor", async () => {
    const s = scripted([
      async function* () {
        yield heartbeat("c0");
        yield created("c1");
        yield heartbeat("c2");
        throw new ConnectError("the server is shutting down", Code.Unavailable);
      },
      async function* (_req, ctx) {
        yield { kind: K.RESYNC, cursor: "c3" };
        yield created("c4");
        await untilClosed(ctx);
      },
    ]);
    const { events, error } = await take(s, 3);
    expect(error).toBeUndefined();
    expect(summary(events)).toEqual(["VERSION_CREATED c1", "RESYNC c3", "VERSION_CREATED c4"]);
    // The second connection resumed after the heartbeat's cursor.
    expect(s.requests.map((r) => r.sinceCursor)).toEqual(["", "c2"]);
    expect(s.watch.cursor).toBe("c4");
    expect(s.reconnects).toHaveLength(1);
    expect(s.reconnects[0]).toMatchObject({ attempt: 1, cursor: "c2" });
    expect(s.reconnects[0]?.error?.code).toBe(Code.Unavailable);
  });

  it("yields heartbeats when asked, and starts after `since`", async () => {
    const s = scripted(
      [
        async function* (_req, ctx) {
          yield heartbeat("c5");
          yield created("c6");
          yield heartbeat("c7");
          await untilClosed(ctx);
        },
      ],
      { heartbeats: true, since: "c4" },
    );
    expect(s.watch.cursor).toBe("c4");
    const { events } = await take(s, 3);
    expect(summary(events)).toEqual(["HEARTBEAT c5", "VERSION_CREATED c6", "HEARTBEAT c7"]);
    expect(s.requests[0]?.sinceCursor).toBe("c4");
  });

  it("sends the project, region, selectors and heartbeat interval", async () => {
    const s = scripted(
      [
        async function* (_req, ctx) {
          yield created("c1");
          await untilClosed(ctx);
        },
      ],
      {
        region: "eu",
        heartbeatIntervalMs: 2_000,
        selectors: [
          { secretId: "3b241101-e2bb-4255-8caf-4136c566a962" },
          { path: "/prod", name: "db" },
          { pathPrefix: "/staging" },
          { selector: { case: "pathPrefix", value: "/raw" } },
        ],
      },
    );
    await take(s, 1);
    const req = s.requests[0];
    expect(req?.region).toBe("eu");
    expect(req?.projectId).toBe("0f8fad5b-d9cb-469f-a165-70867728950e");
    expect(req?.heartbeatInterval?.seconds).toBe(2n);
    expect(req?.selectors.map((x) => x.selector)).toEqual([
      { case: "secretId", value: "3b241101-e2bb-4255-8caf-4136c566a962" },
      { case: "location", value: expect.objectContaining({ path: "/prod", name: "db" }) },
      { case: "pathPrefix", value: "/staging" },
      { case: "pathPrefix", value: "/raw" },
    ]);
  });

  it("reconnects when the server ends the stream cleanly, and on a cut connection", async () => {
    const s = scripted([
      async function* () {
        yield created("c1");
      },
      async function* () {
        yield created("c2");
        throw new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled);
      },
      async function* (_req, ctx) {
        yield created("c3");
        await untilClosed(ctx);
      },
    ]);
    const { events } = await take(s, 3);
    expect(summary(events)).toEqual([
      "VERSION_CREATED c1",
      "VERSION_CREATED c2",
      "VERSION_CREATED c3",
    ]);
    expect(s.requests.map((r) => r.sinceCursor)).toEqual(["", "c1", "c2"]);
    expect(s.reconnects.map((r) => r.error?.code)).toEqual([undefined, Code.Canceled]);
  });

  it("ends with the error when reconnecting cannot help", async () => {
    for (const code of [Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument]) {
      const s = scripted([
        async function* () {
          yield created("c1");
          throw new ConnectError("no", code);
        },
      ]);
      const { events, error } = await take(s, 99);
      expect(summary(events)).toEqual(["VERSION_CREATED c1"]);
      expect(error).toMatchObject({ code });
      expect(s.requests).toHaveLength(1);
      expect(s.reconnects).toHaveLength(0);
    }
  });

  it("backs off exponentially with jitter while the server is away, and starts over after a message", async () => {
    let calls = 0;
    const s = scripted(
      [
        async function* (_req, ctx) {
          calls += 1;
          if (calls === 5) {
            yield created("c1");
            throw new ConnectError("gone again", Code.Unavailable);
          }
          if (calls === 6) {
            yield created("c2");
            await untilClosed(ctx);
          }
          throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
        },
      ],
      { backoff: { initialDelayMs: 8, maxDelayMs: 40, random: () => 0.999 } },
    );
    const { events } = await take(s, 2);
    expect(summary(events)).toEqual(["VERSION_CREATED c1", "VERSION_CREATED c2"]);
    expect(s.reconnects.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 7],
      [2, 15],
      [3, 31],
      [4, 39],
      [1, 7],
    ]);
  });

  it("reconnects after three heartbeat intervals of silence", async () => {
    const s = scripted(
      [
        async function* (_req, ctx) {
          yield heartbeat("c1");
          await untilClosed(ctx);
        },
        async function* (_req, ctx) {
          yield created("c2");
          await untilClosed(ctx);
        },
      ],
      { heartbeatIntervalMs: 40 },
    );
    const { events } = await take(s, 1);
    expect(summary(events)).toEqual(["VERSION_CREATED c2"]);
    expect(s.requests.map((r) => r.sinceCursor)).toEqual(["", "c1"]);
    expect(s.reconnects[0]?.error?.rawMessage).toBe(
      "no message for 120 ms (three heartbeat intervals)",
    );
  });

  it("does not count a slow caller as silence", async () => {
    const s = scripted(
      [
        async function* (_req, ctx) {
          yield created("c1");
          yield created("c2");
          await untilClosed(ctx);
        },
      ],
      { heartbeatIntervalMs: 20 },
    );
    const events: WatchEvent[] = [];
    for await (const event of s.watch) {
      events.push(event);
      if (events.length === 1) await new Promise((r) => setTimeout(r, 300));
      if (events.length === 2) break;
    }
    expect(summary(events)).toEqual(["VERSION_CREATED c1", "VERSION_CREATED c2"]);
    expect(s.requests).toHaveLength(1);
  });

  it("stops at once when aborted, even while waiting to reconnect", async () => {
    const s = scripted(
      [
        // biome-ignore lint/correctness/useYield: the server is down
        async function* () {
          throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
        },
      ],
      { backoff: { initialDelayMs: 60_000, random: () => 0.99 } },
    );
    setTimeout(() => s.abort.abort(), 100);
    const started = Date.now();
    const { events, error } = await take(s, 99);
    expect(events).toEqual([]);
    expect(error).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(s.requests).toHaveLength(1);
  });

  it("closes the stream when the caller breaks out of the loop", async () => {
    let closed: Promise<void> | undefined;
    const s = scripted([
      async function* (_req, ctx) {
        closed = untilClosed(ctx);
        yield created("c1");
        await closed;
      },
    ]);
    for await (const _ of s.watch) break;
    await closed;
    expect(s.requests).toHaveLength(1);
  });

  it("is iterated once, and needs a project", () => {
    const s = scripted([]);
    s.watch[Symbol.asyncIterator]();
    expect(() => s.watch[Symbol.asyncIterator]()).toThrow("a watch can be iterated only once");
    const client = createClient(SecretService, createFake().transport([]));
    expect(() => watchSecrets(client, {})).toThrow("a watch needs a projectId");
  });
});
