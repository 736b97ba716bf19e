import { Role } from "@coffer/api";
import type { Response } from "playwright-core";
import { describe, expect, it } from "vitest";
import { urlsCarrying } from "../support/browser.ts";
import { newToken } from "../support/server-process.ts";
import { runOn, useConsole } from "./support.ts";
import { exactly, openSecrets, signIn, signOut, tokenField } from "./ui.ts";

/**
 * The page's own security, seen from the browser: the headers of the
 * console's responses, where the token is kept (sessionStorage only) and
 * what sign-out leaves behind, tokens the server refuses, and that no
 * token ever appears in a URL.
 */

/** The Content-Security-Policy directives of a response, by name. */
function cspOf(response: Response): Map<string, string[]> {
  const header = response.headers()["content-security-policy"] ?? "";
  const directives = new Map<string, string[]>();
  for (const part of header.split(";")) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) directives.set(name.toLowerCase(), values);
  }
  return directives;
}

/** max-age of a Cache-Control header, or undefined. */
function maxAge(cacheControl: string | undefined): number | undefined {
  const m = /max-age=(\d+)/.exec(cacheControl ?? "");
  return m ? Number(m[1]) : undefined;
}

describe("the console's page security, on PGlite", runOn("pglite"), () => {
  const t = useConsole("pglite", { regions: ["fr-par"] });

  it("serves the page and its assets with a strict CSP, nosniff, no referrer and the right caching", async () => {
    const s = await t.session("headers");
    const response = await s.page.goto("/");
    expect(response?.status()).toBe(200);
    await tokenField(s.page).waitFor();
    await s.step("sign-in page");
    if (response === null) throw new Error("no response for /");

    const headers = response.headers();
    expect(headers["content-type"]).toMatch(/^text\/html/);
    const csp = cspOf(response);
    const scripts = csp.get("script-src") ?? csp.get("default-src") ?? [];
    expect(scripts, "script-src").toContain("'self'");
    expect(scripts.join(" "), "no inline or eval'd script").not.toMatch(
      /unsafe-inline|unsafe-eval|\*|data:|http:|https:/,
    );
    expect(csp.get("connect-src") ?? csp.get("default-src"), "connect-src").toEqual(["'self'"]);
    expect(csp.get("frame-ancestors"), "frame-ancestors").toEqual(["'none'"]);
    expect(csp.get("object-src") ?? csp.get("default-src"), "object-src").toEqual(
      expect.arrayContaining([expect.stringMatching(/^'(none|self)'$/)]),
    );
    expect(csp.get("base-uri"), "base-uri").toBeDefined();
    expect(headers["x-content-type-options"]).toBe("nosniff");
    expect(headers["referrer-policy"]).toBe("no-referrer");
    expect(headers["cache-control"], "index.html is revalidated").toMatch(/no-cache|no-store/);

    // Every script and style the page loaded: from the server, hashed, cached for long.
    const assets = s.responses.filter((r) => new URL(r.url()).pathname.startsWith("/assets/"));
    expect(assets.some((r) => r.url().endsWith(".js"))).toBe(true);
    for (const asset of assets) {
      const h = asset.headers();
      expect(new URL(asset.url()).origin, asset.url()).toBe(t.server.baseUrl);
      expect(asset.status(), asset.url()).toBe(200);
      expect(h["x-content-type-options"], asset.url()).toBe("nosniff");
      expect(
        maxAge(h["cache-control"]) ?? 0,
        `${asset.url()} cache-control`,
      ).toBeGreaterThanOrEqual(31_536_000);
      expect(h["cache-control"], asset.url()).toMatch(/immutable/);
      expect(new URL(asset.url()).pathname, "hashed name").toMatch(/[-.][A-Za-z0-9_-]{8,}\.\w+$/);
      if (asset.url().endsWith(".js")) expect(h["content-type"]).toMatch(/javascript/);
      if (asset.url().endsWith(".css")) expect(h["content-type"]).toMatch(/^text\/css/);
    }
    // The page kept its CSP (nothing bypasses it here) and broke none of it.
    expect(s.cspViolations).toEqual([]);
    await s.close();
  });

  it("refuses to be framed by another page", async () => {
    const s = await t.session("framed");
    // Chromium logs the refusal itself: the error this test expects.
    s.allowedErrors.push(/frame-ancestors/);
    // A page of another origin (about:blank's opener is none) framing the console.
    await s.page.setContent(`<iframe title="console" src="${t.server.baseUrl}/"></iframe>`);
    const frame = s.page.frames().find((f) => f !== s.page.mainFrame());
    await s.page.waitForTimeout(500);
    const framedToken = await frame
      ?.getByLabel(/token/i)
      .count()
      .catch(() => 0);
    expect(framedToken ?? 0, "the sign-in form rendered inside a frame").toBe(0);
    expect(s.errors.join("\n"), "refused by frame-ancestors").toMatch(/frame-ancestors/);
    await s.close();
  });

  it("keeps the token in sessionStorage only, never in a URL, and sign-out forgets it", async () => {
    const { server } = t;
    const s = await t.session("sign-out");
    await signIn(s, server.token);
    await openSecrets(s, server.projectName);
    await s.step("signed in");

    let stored = await s.storage();
    expect(JSON.stringify(stored.sessionStorage), "the token is in sessionStorage").toContain(
      server.token,
    );
    expect(stored.localStorage, "localStorage").toEqual({});
    expect(stored.cookies, "cookies").toEqual([]);

    // A reload in the same tab keeps the session (sessionStorage lives as long as the tab).
    await s.page.reload();
    await s.page.getByRole("button", { name: exactly("Sign out") }).waitFor();

    // A new tab of the same browser starts signed out.
    const other = await s.context.newPage();
    await other.goto("/");
    await tokenField(other).waitFor();
    await other.close();

    await signOut(s);
    await s.step("signed out");
    stored = await s.storage();
    expect(stored, "nothing left after sign-out").toEqual({
      sessionStorage: {},
      localStorage: {},
      cookies: [],
    });
    // Back does not bring the secrets back.
    await s.page.goBack();
    await tokenField(s.page).waitFor();
    expect(await s.page.getByRole("button", { name: exactly("Sign out") }).count()).toBe(0);

    expect(urlsCarrying(s.allUrls(), [server.token]), "URLs carrying the token").toEqual([]);
    for (const request of s.requests) {
      // The token travels in the Authorization header of API calls only.
      const auth = request.headers().authorization;
      if (auth !== undefined) expect(new URL(request.url()).pathname).toMatch(/^\/coffer\./);
    }
    await s.close();
  });

  it("shows the server's message for an unknown token and for a revoked one", async () => {
    const { server } = t;
    const s = await t.session("wrong-token");
    // The browser logs a refused call's status as an error: expected here.
    s.allowedErrors.push(/Failed to load resource: the server responded with a status of 401/);
    await s.page.goto("/");
    await tokenField(s.page).fill(newToken());
    await s.page.getByRole("button", { name: /sign in/i }).click();
    const alert = s.page.getByRole("alert").filter({ hasText: /\S/ }).first();
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/token|unauthenticated|not valid|invalid/i);
    await s.step("unknown token");

    const created = await server.admin.createToken({
      name: "revoked-in-test",
      grants: [{ projectId: server.projectId, role: Role.READ_ONLY }],
    });
    await server.admin.revokeToken({ tokenId: created.token?.id ?? "" });
    await tokenField(s.page).fill(created.value);
    await s.page.getByRole("button", { name: /sign in/i }).click();
    // The server does not tell a revoked token from an unknown one, nor does the console.
    await s.page.getByRole("alert").filter({ hasText: /\S/ }).first().waitFor();
    expect(await s.page.getByRole("button", { name: exactly("Sign out") }).count()).toBe(0);
    await s.step("revoked token");
    expect((await s.storage()).sessionStorage, "a refused token is not kept").toEqual({});
    expect(urlsCarrying(s.allUrls(), [created.value])).toEqual([]);
    await s.close();
  });
});
