/**
 * How Coffer reaches an issuer: https only (http only to the loopback, for
 * tests and an issuer on the same host), a timeout, a size cap, and no
 * redirects (a redirect could lead a fetch to a plain-http or internal
 * address the URL check refused).
 */

/** How long one fetch of a discovery document or a JWKS may take. */
export const FETCH_TIMEOUT_MS = 5_000;
/** The largest discovery document or JWKS read. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** Whether a host is on the loopback: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The rule a URL Coffer would fetch from breaks, or undefined: an absolute
 * https URL (http only for a loopback host), without credentials or a
 * fragment.
 */
export function fetchableUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be an absolute URL (https://...)";
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    return "must be an https:// URL (http:// only for a loopback host: 127.0.0.0/8, ::1, localhost)";
  }
  if (url.username !== "" || url.password !== "") return "must not hold a user name or password";
  if (url.hash !== "") return "must not hold a fragment (#...)";
  return undefined;
}

/** A fetch that failed, with a reason for the audit trail (never a response body). */
export class FetchFailed extends Error {
  override readonly name = "FetchFailed";
}

/** Fetches a JSON document under the rules above. */
export async function fetchJson(url: string): Promise<unknown> {
  const problem = fetchableUrlProblem(url);
  if (problem !== undefined) throw new FetchFailed(`key URL refused: ${problem}`);
  let res: Response;
  try {
    res = await fetch(url, {
      redirect: "error",
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      headers: { accept: "application/json" },
    });
  } catch (e) {
    const timeout = (e as Error).name === "TimeoutError";
    throw new FetchFailed(timeout ? "key fetch timed out" : "key fetch failed (network)");
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new FetchFailed(`key fetch answered HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel();
    throw new FetchFailed(`key document larger than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  if (reader === undefined) throw new FetchFailed("key fetch returned no body");
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_DOCUMENT_BYTES) {
        await reader.cancel();
        throw new FetchFailed(`key document larger than ${MAX_DOCUMENT_BYTES} bytes`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof FetchFailed) throw e;
    throw new FetchFailed("key fetch failed while reading");
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new FetchFailed("key document is not JSON");
  }
}
