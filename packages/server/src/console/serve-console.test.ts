import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { gunzipSync } from "node:zlib";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../config.ts";
import type { Protocol } from "../testing/clients.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";
import { acceptsGzip, CONTENT_SECURITY_POLICY } from "./serve-console.ts";

/**
 * The web console on the HTTP port, over a real port: a fixture build in a
 * temporary folder stands for packages/console/dist, so that these tests do
 * not depend on the console's build.
 */

const INDEX_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <title>Coffer</title>
    <script type="module" crossorigin src="/assets/index-Bx7kq2Lm.js"></script>
    <link rel="stylesheet" crossorigin href="/assets/index-C4d9ZpQe.css">
  </head>
  <body><div id="root"></div></body>
</html>
`;
const SCRIPT = `${"export const answer = 42; console.log(answer);\n".repeat(200)}`;
const STYLE = "body{margin:0}";
const ICON = Buffer.from([0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x10, 0x10]);

const SECURITY = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};
const IMMUTABLE = "public, max-age=31536000, immutable";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/1.1 request, its body as it came on the wire (no decompression). */
function request(
  port: number,
  urlPath: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: urlPath, method: options.method ?? "GET", agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on("error", reject);
      },
    );
    for (const [k, v] of Object.entries(options.headers ?? {})) req.setHeader(k, v);
    req.on("error", reject);
    req.end(options.body);
  });
}

const fixtures: string[] = [];
afterAll(() => {
  for (const dir of fixtures) rmSync(dir, { recursive: true, force: true });
});

/** A folder shaped like the console's build (or, with `built: false`, without index.html). */
function fixtureBuild(built = true): string {
  const dir = mkdtempSync(path.join(tmpdir(), "coffer-console-"));
  fixtures.push(dir);
  mkdirSync(path.join(dir, "assets"));
  writeFileSync(path.join(dir, "assets", "index-Bx7kq2Lm.js"), SCRIPT);
  writeFileSync(path.join(dir, "assets", "index-C4d9ZpQe.css"), STYLE);
  writeFileSync(path.join(dir, "favicon.ico"), ICON);
  writeFileSync(path.join(dir, "build-info.json"), '{"commit":"abc"}\n');
  if (built) writeFileSync(path.join(dir, "index.html"), INDEX_HTML);
  return dir;
}

const pglite = serverBackends.find((b) => b.name === "pglite");
if (pglite === undefined) throw new Error("no PGlite backend");

async function start(overrides: Partial<Config>, logger?: pino.Logger): Promise<TestServer> {
  return pglite?.start(overrides, logger) as Promise<TestServer>;
}

describe("the web console on the HTTP port", () => {
  let running: TestServer;
  let port: number;
  const logLines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split("\n")) if (l !== "") logLines.push(JSON.parse(l));
        done();
      },
    });
    running = await start({ console: { dir: fixtureBuild() } }, pino({ level: "info" }, sink));
    port = running.server.httpPort;
  });
  afterAll(() => running?.stop());

  it("serves index.html at / with the security headers, revalidated on every load", async () => {
    const got = await request(port, "/");
    expect(got.status).toBe(200);
    expect(got.headers).toMatchObject({
      ...SECURITY,
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-cache",
    });
    expect(got.headers["content-encoding"]).toBeUndefined();
    expect(got.body.toString()).toBe(INDEX_HTML);
    expect(CONTENT_SECURITY_POLICY).toBe(SECURITY["content-security-policy"]);
    // The same page by its own name.
    const named = await request(port, "/index.html");
    expect(named.status).toBe(200);
    expect(named.body.toString()).toBe(INDEX_HTML);
  });

  it("serves hashed assets with their type, cached for good", async () => {
    const script = await request(port, "/assets/index-Bx7kq2Lm.js");
    expect(script.status).toBe(200);
    expect(script.headers).toMatchObject({
      ...SECURITY,
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": IMMUTABLE,
      "content-length": String(SCRIPT.length),
    });
    expect(script.body.toString()).toBe(SCRIPT);
    const style = await request(port, "/assets/index-C4d9ZpQe.css?v=1");
    expect(style.headers).toMatchObject({
      "content-type": "text/css; charset=utf-8",
      "cache-control": IMMUTABLE,
    });
    expect(style.body.toString()).toBe(STYLE);
    // A file at the root is not hashed: revalidated.
    const icon = await request(port, "/favicon.ico");
    expect(icon.headers).toMatchObject({
      "content-type": "image/x-icon",
      "cache-control": "no-cache",
    });
    expect(icon.body.equals(ICON)).toBe(true);
  });

  it("gzips text when the client accepts it, and says that the answer varies", async () => {
    const gz = await request(port, "/assets/index-Bx7kq2Lm.js", {
      headers: { "accept-encoding": "br;q=1, gzip;q=0.8" },
    });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers.vary).toBe("accept-encoding");
    expect(Number(gz.headers["content-length"])).toBe(gz.body.length);
    expect(gz.body.length).toBeLessThan(SCRIPT.length / 10);
    expect(gunzipSync(gz.body).toString()).toBe(SCRIPT);
    for (const refused of ["identity", "gzip;q=0", "br", "*;q=0"]) {
      const plain = await request(port, "/assets/index-Bx7kq2Lm.js", {
        headers: { "accept-encoding": refused },
      });
      expect(plain.headers["content-encoding"], refused).toBeUndefined();
      expect(plain.headers.vary).toBe("accept-encoding");
      expect(plain.body.toString()).toBe(SCRIPT);
    }
    const page = await request(port, "/", { headers: { "accept-encoding": "gzip" } });
    expect(page.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(page.body).toString()).toBe(INDEX_HTML);
  });

  it("answers index.html for the app's routes (deep links), never for a missing asset", async () => {
    for (const route of [
      "/p/0f8fad5b-d9cb-469f-a165-70867728950e/fr-par/secrets/7c9e6679-7425-40de-944b-e07fc1f90ae7",
      "/sign-in?next=%2Fp",
      "/tokens",
      "/build-info.json",
    ]) {
      const got = await request(port, route);
      expect(got.status, route).toBe(200);
      expect(got.headers).toMatchObject({
        ...SECURITY,
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-cache",
      });
      expect(got.body.toString()).toBe(INDEX_HTML);
    }
    for (const missing of ["/assets/index-old.js", "/assets/", "/assets/../index.html"]) {
      const got = await request(port, missing);
      expect(got.status, missing).toBe(404);
      expect(got.headers).toMatchObject({
        ...SECURITY,
        "content-type": "text/plain; charset=utf-8",
      });
      expect(got.body.toString()).not.toContain("<html");
    }
  });

  it("answers HEAD without a body, validators with 304, and other methods with 405", async () => {
    const head = await request(port, "/assets/index-Bx7kq2Lm.js", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(SCRIPT.length));
    expect(head.body.length).toBe(0);

    const first = await request(port, "/");
    const etag = first.headers.etag ?? "";
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await request(port, "/", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.headers).toMatchObject({ ...SECURITY, etag, "cache-control": "no-cache" });
    expect(again.body.length).toBe(0);

    for (const [method, urlPath] of [
      ["POST", "/"],
      ["PUT", "/assets/index-Bx7kq2Lm.js"],
      ["DELETE", "/p/x"],
      ["OPTIONS", "/"],
    ] as const) {
      const got = await request(port, urlPath, { method, body: method === "POST" ? "x=1" : "" });
      expect(got.status, `${method} ${urlPath}`).toBe(405);
      expect(got.headers).toMatchObject({ ...SECURITY, allow: "GET, HEAD" });
    }
  });

  it("leaves the API's paths to connect: an unknown method is an empty 404, not the console", async () => {
    for (const urlPath of [
      "/coffer.secretmanager.v1.SecretService/NoSuchMethod",
      "/coffer.nope.v1.Nothing/Get",
      "/grpc.health.v1.Health/Nope",
    ]) {
      for (const method of ["GET", "POST"]) {
        const got = await request(port, urlPath, { method });
        expect(got.status, `${method} ${urlPath}`).toBe(404);
        expect(got.body.length).toBe(0);
        expect(got.headers["content-security-policy"]).toBeUndefined();
        expect(got.headers["cache-control"]).toBe("no-store");
      }
    }
  });

  it("still serves the RPCs on the same port, over Connect and gRPC-Web, uncached", async () => {
    for (const protocol of ["connect", "grpc-web"] satisfies Protocol[]) {
      const { regions, defaultRegion } = await running
        .client(protocol, running.adminToken)
        .listRegions({});
      expect({ regions, defaultRegion }).toEqual({ regions: ["local"], defaultRegion: "local" });
    }
    const overGet = await request(
      port,
      "/coffer.secretmanager.v1.SecretService/ListRegions?encoding=json&message=%7B%7D",
      { headers: { authorization: `Bearer ${running.adminToken}` } },
    );
    expect(overGet.status).toBe(200);
    expect(JSON.parse(overGet.body.toString())).toEqual({
      regions: ["local"],
      defaultRegion: "local",
    });
    expect(overGet.headers["cache-control"]).toBe("no-store");
    expect(overGet.headers["content-security-policy"]).toBeUndefined();
  });

  it("serves the console over cleartext HTTP/2 too", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const got = await new Promise<{ headers: http2.IncomingHttpHeaders; body: string }>(
        (resolve, reject) => {
          const stream = session.request({ ":path": "/p/x/secrets" });
          let headers: http2.IncomingHttpHeaders = {};
          let body = "";
          stream.on("response", (h) => {
            headers = h;
          });
          stream.setEncoding("utf8");
          stream.on("data", (c: string) => {
            body += c;
          });
          stream.on("end", () => resolve({ headers, body }));
          stream.on("error", reject);
        },
      );
      expect(got.headers[":status"]).toBe(200);
      expect(got.headers).toMatchObject({ ...SECURITY, "cache-control": "no-cache" });
      expect(got.body).toBe(INDEX_HTML);
    } finally {
      session.close();
    }
  });

  it("says where the console is served, once, in the startup line", () => {
    const serving = logLines.filter((l) => l.msg === "coffer is serving");
    expect(serving).toHaveLength(1);
    expect(serving[0]?.console).toBe(`http://127.0.0.1:${port}/`);
    expect(logLines.filter((l) => l.level === 40)).toEqual([]);
  });
});

describe("the web console, off or not built", () => {
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const stop of stops) await stop();
  });

  it("is not served with COFFER_CONSOLE=off: / is connect's empty 404", async () => {
    const running = await start({ console: undefined });
    stops.push(running.stop);
    for (const urlPath of ["/", "/index.html", "/assets/index-Bx7kq2Lm.js"]) {
      const got = await request(running.server.httpPort, urlPath);
      expect(got.status, urlPath).toBe(404);
      expect(got.body.length).toBe(0);
      expect(got.headers["content-security-policy"]).toBeUndefined();
    }
  });

  it("answers 503 saying what to run when it is not built, warns once, and serves the API", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split("\n")) if (l !== "") lines.push(JSON.parse(l));
        done();
      },
    });
    const running = await start(
      { console: { dir: fixtureBuild(false) } },
      pino({ level: "info" }, sink),
    );
    stops.push(running.stop);
    const port = running.server.httpPort;
    for (const urlPath of ["/", "/p/x", "/assets/index-Bx7kq2Lm.js"]) {
      const got = await request(port, urlPath);
      expect(got.status, urlPath).toBe(503);
      expect(got.headers).toMatchObject({
        ...SECURITY,
        "content-type": "text/plain; charset=utf-8",
      });
      expect(got.body.toString()).toContain("npm run build");
    }
    expect((await request(port, "/", { method: "POST" })).status).toBe(405);
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain("npm run build");
    expect(lines.find((l) => l.msg === "coffer is serving")?.console).toBe("not built (503)");
    const { regions } = await running.client("connect", running.adminToken).listRegions({});
    expect(regions).toEqual(["local"]);
  });
});

describe("acceptsGzip", () => {
  it.each([
    ["gzip", true],
    ["gzip, deflate, br", true],
    ["br;q=1.0, gzip;q=0.5", true],
    ["GZIP", true],
    ["*", true],
    ["br, *;q=0.1", true],
    ["x-gzip", true],
    ["gzip;q=0", false],
    ["gzip;q=0, *", false],
    ["*;q=0", false],
    ["identity", false],
    ["br", false],
    ["", false],
  ])("%j -> %s", (header, want) => {
    expect(acceptsGzip(header)).toBe(want);
  });
  it("is false without the header", () => {
    expect(acceptsGzip(undefined)).toBe(false);
  });
});
