/**
 * The signed-in token. It lives in sessionStorage only (one tab, gone when
 * the tab closes), never in localStorage, a cookie or a URL.
 */
export const SESSION_KEY = "coffer.session";
/** The last project and region opened, to come back to them at `/`. */
export const LAST_PLACE_KEY = "coffer.last-place";

export function readToken(): string | undefined {
  try {
    return sessionStorage.getItem(SESSION_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function writeToken(token: string): void {
  sessionStorage.setItem(SESSION_KEY, token);
}

/**
 * Removes the token and everything else kept in this tab's sessionStorage.
 * The console is the only page of its origin (the server's HTTP port), so
 * all of it is the console's: nothing may outlive a sign-out.
 */
export function forgetSession(): void {
  try {
    sessionStorage.clear();
  } catch {
    // Storage disabled: there is nothing to forget.
  }
}

export interface Place {
  projectId: string;
  region: string;
}

export function readLastPlace(): Place | undefined {
  try {
    const raw = sessionStorage.getItem(LAST_PLACE_KEY);
    if (raw === null) return undefined;
    const p = JSON.parse(raw) as Partial<Place>;
    return typeof p.projectId === "string" && typeof p.region === "string"
      ? { projectId: p.projectId, region: p.region }
      : undefined;
  } catch {
    return undefined;
  }
}

export function writeLastPlace(place: Place): void {
  sessionStorage.setItem(LAST_PLACE_KEY, JSON.stringify(place));
}
