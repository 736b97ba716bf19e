import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { ASSETS_PREFIX, BUILD_HINT, type ConsoleSite, INDEX, type SiteFile } from "./site.ts";

/** A handler for the requests that match no RPC (connect-node's `fallback`). */
export type FallbackHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type Request = Parameters<FallbackHandler>[0];
type Response = Parameters<FallbackHandler>[1];

/**
 * The console's policy: its own scripts, styles and API only, no inline
 * script or style, no framing, no form posts, no plugins.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** On every answer of the console, whatever its status. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

/**
 * Paths of the API's services (coffer.*, grpc.health.*, grpc.reflection.*):
 * one that matches no method keeps connect's own answer, an empty 404.
 */
function isApiPath(p: string): boolean {
  return p.startsWith("/coffer.") || p.startsWith("/grpc.");
}

/**
 * Serves the console from memory for every request no RPC matched:
 *
 * - a file of the build, by its exact path; `/` and every other path (the
 *   app's client-side routes: deep links) answer index.html;
 * - under /assets/, only files of the build: a missing one is 404, never
 *   index.html (a stale page would run HTML as script);
 * - GET and HEAD only (405 otherwise);
 * - gzip when the client accepts it, validators (ETag, If-None-Match);
 * - not built: 503 with what to run.
 *
 * Every answer carries the security headers, and its own cache-control over
 * the port's `no-store`.
 */
export function consoleHandler(site: ConsoleSite): FallbackHandler {
  const notBuilt = Buffer.from(
    `The Coffer web console is not built: ${BUILD_HINT}.\nThe API on this port works without it; COFFER_CONSOLE=off stops serving the console.\n`,
  );
  return (req, res) => {
    const urlPath = (req.url ?? "").split(/[?#]/, 1)[0] ?? "";
    if (isApiPath(urlPath)) {
      res.writeHead(404);
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      plain(req, res, 405, `${req.method ?? "This method"} is not allowed here: GET or HEAD.\n`);
      return;
    }
    if (!site.built) {
      plain(req, res, 503, notBuilt);
      return;
    }
    const file =
      site.files.get(urlPath === "/" ? INDEX : urlPath) ??
      (urlPath.startsWith(ASSETS_PREFIX) ? undefined : site.files.get(INDEX));
    if (file === undefined) {
      plain(req, res, 404, "Not found.\n");
      return;
    }
    send(req, res, file);
  };
}

function send(req: Request, res: Response, file: SiteFile): void {
  res.setHeader("content-type", file.type);
  res.setHeader("cache-control", file.cache);
  res.setHeader("etag", file.etag);
  if (file.gzip !== undefined) res.setHeader("vary", "accept-encoding");
  if (matches(req.headers["if-none-match"], file.etag)) {
    res.removeHeader("content-type");
    res.writeHead(304);
    res.end();
    return;
  }
  let body = file.body;
  if (file.gzip !== undefined && acceptsGzip(req.headers["accept-encoding"])) {
    body = file.gzip;
    res.setHeader("content-encoding", "gzip");
  }
  res.setHeader("content-length", body.length);
  res.writeHead(200);
  finish(req, res, body);
}

function plain(req: Request, res: Response, status: number, text: string | Buffer): void {
  const body = typeof text === "string" ? Buffer.from(text) : text;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.setHeader("cache-control", "no-store");
  res.setHeader("content-length", body.length);
  res.writeHead(status);
  finish(req, res, body);
}

/** Ends the answer: with its body, or without for HEAD (the headers say its length). */
function finish(req: Request, res: Response, body: Buffer): void {
  if (req.method === "HEAD") res.end();
  else res.end(body);
}

/** Whether an If-None-Match header names this ETag (or `*`); weak comparison, as RFC 9110 asks. */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag.replace(/^W\//, "") === etag;
  });
}

/** Whether an Accept-Encoding header allows gzip: named (or `*`) with a q-value above 0. */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const part of header.split(",")) {
    const [name = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    const weight = Number.isNaN(q) ? 0 : q;
    if (name === "gzip" || name === "x-gzip") gzip = weight;
    else if (name === "*") any = weight;
  }
  return (gzip ?? any ?? 0) > 0;
}
