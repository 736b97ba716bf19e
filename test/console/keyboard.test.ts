import { randomBytes } from "node:crypto";
import { SecretType } from "@coffer/api";
import type { Locator, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { runOn, useConsole } from "./support.ts";
import {
  CREATE_SECRET_LINK,
  createSecretForm,
  exactly,
  openSecrets,
  SECRET_NAME_LABEL,
  signIn,
  waitForCurrentTab,
} from "./ui.ts";
import { findSecret } from "./verify.ts";

/**
 * The create form with the keyboard alone: from the Secrets screen, Tab
 * (and Shift+Tab never) to each control, type, Space and Enter; no click
 * and no `fill` once signed in. A control that Tab cannot reach, or that
 * does not answer its keys, fails the test.
 */

const REGION = "fr-par";

/** Presses Tab until `target` has the focus; fails after `max` presses. */
async function tabTo(page: Page, target: Locator, max = 60): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press("Tab");
  }
  const focused = await page.evaluate(
    "document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : 'nothing'",
  );
  throw new Error(`Tab did not reach ${String(target)} in ${max} presses (focus on ${focused})`);
}

describe("the create form with the keyboard alone, on PGlite", runOn("pglite"), () => {
  const t = useConsole("pglite", { regions: [REGION] });

  it("tabs through the form and creates a protected opaque secret with a time to live without the mouse", async () => {
    const { server } = t;
    const s = await t.session("keyboard");
    const { page } = s;
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    const value = `typed-${randomBytes(8).toString("hex")}`;

    // Start from the top of the page, as a person pressing Tab would.
    await page.evaluate("document.activeElement && document.activeElement.blur()");
    const create = page
      .getByRole("link", { name: CREATE_SECRET_LINK })
      .or(page.getByRole("button", { name: CREATE_SECRET_LINK }))
      .first();
    await tabTo(page, create);
    await page.keyboard.press("Enter");
    const form = createSecretForm(page);
    await form.waitFor();
    await s.step("keyboard form");

    // Region and type keep their defaults (the only region; opaque). The value, by hand.
    // "Add manually" and the type "Opaque" are the defaults.
    expect(await form.getByRole("radio", { name: exactly("Add manually") }).isChecked()).toBe(true);
    expect(await form.getByRole("radio", { name: exactly("Opaque") }).isChecked()).toBe(true);
    await tabTo(page, form.getByLabel(exactly("Secret value")));
    await page.keyboard.type(value);
    await tabTo(page, form.getByLabel(exactly("Path")));
    // The path starts as "/" (or the folder the person came from): select it all, then type.
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.type("/keyboard/only");
    await tabTo(page, form.getByLabel(SECRET_NAME_LABEL));
    await page.keyboard.type("typed-secret");
    await tabTo(page, form.getByLabel(/^\s*tags/i));
    await page.keyboard.type("a11y, keyboard");
    const protect = form.getByRole("switch", { name: exactly("Enable secret protection") });
    await tabTo(page, protect);
    await page.keyboard.press("Space");
    expect(await protect.isChecked()).toBe(true);
    // The focused control is visibly marked (a focus ring or outline).
    const outline = await protect.evaluate((el) => {
      const style = getComputedStyle(el);
      const parent = el.parentElement ? getComputedStyle(el.parentElement) : undefined;
      return [style.outlineStyle, style.boxShadow, parent?.outlineStyle, parent?.boxShadow].join(
        " ",
      );
    });
    expect(outline, "a visible focus indicator").not.toMatch(/^(none\s*)+$/);
    // The ephemeral policy: Enable Time to Live with Space, then 12 hours typed and chosen by keys.
    await tabTo(page, form.getByRole("switch", { name: exactly("Enable Time to Live") }));
    await page.keyboard.press("Space");
    await tabTo(page, form.getByLabel(exactly("Time to live")));
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.type("12");
    await tabTo(page, form.getByLabel(exactly("Unit")));
    // A focused native select takes the first option starting with the typed letter.
    await page.keyboard.type("h");
    expect(await form.getByLabel(exactly("Unit")).inputValue()).toBe("hours");
    await s.step("keyboard filled");
    await tabTo(page, form.getByRole("button", { name: exactly("Create secret") }));
    await page.keyboard.press("Enter");
    await waitForCurrentTab(page, "Overview");
    await s.step("keyboard overview");

    const secret = await findSecret(server.secrets, {
      region: REGION,
      projectId: server.projectId,
      path: "/keyboard/only",
      name: "typed-secret",
    });
    expect(secret.type).toBe(SecretType.OPAQUE);
    expect(secret.protected).toBe(true);
    expect(secret.tags).toEqual(["a11y", "keyboard"]);
    expect(Number(secret.ephemeralPolicy?.timeToLive?.seconds)).toBe(12 * 3600);
    expect(secret.ephemeralPolicy?.expiresOnceAccessed).toBe(false);
    const read = await server.secrets.accessSecretVersion({
      region: REGION,
      secretId: secret.id,
      revision: "latest",
    });
    expect(Buffer.from(read.data).toString()).toBe(value);
    await s.close();
  });
});
