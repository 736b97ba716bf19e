import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freshMap, noteSessionStream, RENEW_EVERY, renewsSessionStreams } from "./stream-tables.ts";

/** Node's map of a session's streams, as stream-tables.ts finds it. */
function streamsOf(session: http2.Http2Session): Map<number, unknown> {
  const key = Object.getOwnPropertySymbols(session).find((k) => k.description === "state");
  const state = (session as unknown as Record<symbol, { streams: Map<number, unknown> }>)[
    key as symbol
  ];
  if (state === undefined) throw new Error("node's session has no state");
  return state.streams;
}

describe("freshMap", () => {
  it("copies every entry, in order, into a new map of the same class", () => {
    class Tagged<K, V> extends Map<K, V> {}
    const map = new Tagged<string, number>([
      ["b", 2],
      ["a", 1],
    ]);
    map.delete("b");
    map.set("c", 3);
    const copy = freshMap(map);
    expect(copy).not.toBe(map);
    expect(copy).toBeInstanceOf(Tagged);
    expect([...copy]).toEqual([
      ["a", 1],
      ["c", 3],
    ]);
  });
});

describe("noteSessionStream", () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it("renews node's map of a session's streams every RENEW_EVERY streams, and the session goes on serving", async () => {
    // The first stream is held open across the renewals; the others are answered at once.
    const held: http2.ServerHttp2Stream[] = [];
    let serverSession: http2.Http2Session | undefined;
    const maps = new Set<Map<number, unknown>>();
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      serverSession = stream.session;
      noteSessionStream(stream.session);
      if (stream.session !== undefined) maps.add(streamsOf(stream.session));
      if (headers[":path"] === "/held") held.push(stream);
      else stream.respond({ ":status": 200 }, { endStream: true });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    close = async () => {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    };
    /** The response's status; 0 when the stream closed without one. */
    const request = (path: string) =>
      new Promise<number>((resolve) => {
        const req = client.request({ ":path": path }, { endStream: true });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", () => undefined);
        req.on("close", () => resolve(0));
        req.resume();
      });
    const heldResponse = request("/held");
    for (let i = 1; i < 2 * RENEW_EVERY + 1; i++) expect(await request(`/${i}`)).toBe(200);

    expect(serverSession).toBeDefined();
    const session = serverSession as http2.Http2Session;
    // On a node that moved this private map, this fails: renew it elsewhere, or drop the renewal.
    expect(renewsSessionStreams(session)).toBe(true);
    // Two renewals: three maps in turn, and the one node uses now holds the open stream.
    expect(maps.size).toBe(3);
    expect([...streamsOf(session).values()]).toEqual(held);
    // The stream opened before the renewals is still the session's: it answers,
    expect(held).toHaveLength(1);
    held[0]?.respond({ ":status": 204 }, { endStream: true });
    expect(await heldResponse).toBe(204);
    // and the renewed map is what node closes the session's streams from.
    const last = request("/held");
    await expect.poll(() => held.length).toBe(2);
    session.destroy();
    expect(held[1]?.destroyed).toBe(true);
    expect(await last).toBe(0);
  });
});
