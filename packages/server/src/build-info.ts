import { readFileSync } from "node:fs";

/** What this server is: its package version and the commit it was built from. */
export interface BuildInfo {
  version: string;
  /** The git commit `npm run build` compiled, or "source" when running from src/ (tests, tsx). */
  commit: string;
}

function readJson(url: URL): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(url, "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

let cached: BuildInfo | undefined;

/**
 * Read once: the version from the package's package.json (one folder up from
 * both src/ and dist/), the commit from the build-info.json that the build
 * writes beside the compiled code.
 */
export function buildInfo(): BuildInfo {
  cached ??= {
    version: String(readJson(new URL("../package.json", import.meta.url))?.version ?? "unknown"),
    commit: String(readJson(new URL("./build-info.json", import.meta.url))?.commit ?? "source"),
  };
  return cached;
}
