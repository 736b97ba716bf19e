import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FetchFailed, fetchJson, MAX_DOCUMENT_BYTES } from "./fetch.ts";

// What Coffer accepts from an issuer's key endpoints: a JSON document under
// 1 MiB, answered directly (no redirect), with a 2xx status.

describe("fetching a key document", () => {
  let server: Server;
  let base = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      switch (req.url) {
        case "/ok":
          res.writeHead(200, { "content-type": "application/json" }).end('{"keys":[]}');
          break;
        case "/huge-declared":
          res.writeHead(200, { "content-length": String(MAX_DOCUMENT_BYTES + 1) });
          res.end("x".repeat(MAX_DOCUMENT_BYTES + 1));
          break;
        case "/huge-chunked":
          res.writeHead(200);
          for (let i = 0; i < 17; i++) res.write("x".repeat(64 * 1024));
          res.end();
          break;
        case "/html":
          res.writeHead(200).end("<html>");
          break;
        case "/redirect":
          res.writeHead(302, { location: "/ok" }).end();
          break;
        default:
          res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const failure = async (url: string) => {
    try {
      await fetchJson(url);
    } catch (e) {
      if (e instanceof FetchFailed) return e.message;
      throw e;
    }
    return "fetched";
  };

  it("reads a JSON document", async () => {
    expect(await fetchJson(`${base}/ok`)).toEqual({ keys: [] });
  });

  it.each([
    ["/huge-declared", "key document larger than 1048576 bytes"],
    ["/huge-chunked", "key document larger than 1048576 bytes"],
    ["/html", "key document is not JSON"],
    ["/redirect", "key fetch failed (network)"],
    ["/missing", "key fetch answered HTTP 404"],
  ])("refuses %s", async (path, reason) => {
    expect(await failure(`${base}${path}`)).toBe(reason);
  });

  it("never fetches plain http from a host off the loopback", async () => {
    expect(await failure("http://example.com/jwks")).toMatch(/^key URL refused: must be an https/);
  });
});
