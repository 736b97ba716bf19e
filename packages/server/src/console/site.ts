import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** One file of the console, read once at start, as it is answered. */
export interface SiteFile {
  body: Buffer;
  /** The body gzipped, for text types where that is smaller. */
  gzip?: Buffer;
  /** The `content-type` header. */
  type: string;
  /** A strong validator (the body's SHA-256), quoted. */
  etag: string;
  /** The `cache-control` header: hashed names are immutable, the rest revalidated. */
  cache: string;
}

/**
 * The built console, held in memory: every request is a lookup in `files`
 * by the URL's path, so no path from a request ever reaches the file system.
 */
export type ConsoleSite =
  | { built: true; dir: string; files: ReadonlyMap<string, SiteFile> }
  | { built: false; dir: string | undefined; reason: string };

/** Files under /assets/ carry a content hash in their names (Vite's build): cached for good. */
export const ASSETS_PREFIX = "/assets/";
export const IMMUTABLE = "public, max-age=31536000, immutable";
export const REVALIDATE = "no-cache";
/** The page every client-side route answers. */
export const INDEX = "/index.html";

/** What to run when the console is not built, in the log and in the 503 page. */
export const BUILD_HINT =
  "run `npm run build` in the Coffer repository (`npm start` builds it too), then restart coffer-server";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".xml": "application/xml; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".ico": "image/x-icon",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".otf": "font/otf",
  ".wasm": "application/wasm",
};

/** Types worth compressing (images and fonts already are). */
const TEXT = /^(text\/|application\/(json|manifest\+json|xml)|image\/svg\+xml)/;

/** Files of the build that are not the site's: the build's commit, for the package. */
const NOT_SERVED = new Set(["/build-info.json"]);

/**
 * Where the installed `@coffer/console` keeps its build (its dist/), or
 * undefined when the package cannot be found. It is a dependency of the
 * server: in the repository it is the workspace's packages/console, in an
 * installation node_modules/@coffer/console.
 */
export function installedConsoleDir(): string | undefined {
  try {
    const manifest = fileURLToPath(import.meta.resolve("@coffer/console/package.json"));
    return path.join(path.dirname(manifest), "dist");
  } catch {
    return undefined;
  }
}

/**
 * Reads the built console from `dir` (index.html and the rest, hashed files
 * under assets/) into memory, with each file's headers and its gzip
 * precomputed. A missing folder or index.html is "not built", never an
 * error: the server serves its API without the console.
 */
export function loadConsole(dir: string | undefined): ConsoleSite {
  if (dir === undefined) {
    return { built: false, dir, reason: "the @coffer/console package is not installed" };
  }
  if (!statSync(path.join(dir, "index.html"), { throwIfNoEntry: false })?.isFile()) {
    return { built: false, dir, reason: `${path.join(dir, "index.html")} does not exist` };
  }
  const files = new Map<string, SiteFile>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    // Regular files only: a symbolic link could point out of the build.
    if (!entry.isFile() || entry.name.startsWith(".")) continue;
    const full = path.join(entry.parentPath, entry.name);
    const urlPath = `/${path.relative(dir, full).split(path.sep).join("/")}`;
    if (NOT_SERVED.has(urlPath)) continue;
    files.set(urlPath, siteFile(urlPath, readFileSync(full)));
  }
  return { built: true, dir, files };
}

function siteFile(urlPath: string, body: Buffer): SiteFile {
  const type = TYPES[path.posix.extname(urlPath).toLowerCase()] ?? "application/octet-stream";
  const file: SiteFile = {
    body,
    type,
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
    cache: urlPath.startsWith(ASSETS_PREFIX) ? IMMUTABLE : REVALIDATE,
  };
  if (TEXT.test(type) && body.length > 256) {
    const gzip = gzipSync(body, { level: 9 });
    if (gzip.length < body.length * 0.9) file.gzip = gzip;
  }
  return file;
}
