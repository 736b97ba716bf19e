import { randomBytes } from "node:crypto";
import { SecretType } from "@coffer/api";
import type { Locator, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { runOn, useConsole } from "./support.ts";
import {
  CREATE_SECRET_LINK,
  CREATE_VERSION_BUTTON,
  createSecretForm,
  exactly,
  openSecrets,
  overviewTab,
  SECRET_NAME_LABEL,
  signIn,
  versionsTab,
  waitForCurrentTab,
} from "./ui.ts";
import { findSecret } from "./verify.ts";

/**
 * Accessibility, on one server: every screen and dialog of the console,
 * visited as an admin on a project with a few secrets, each step running
 * axe-core (0 serious or critical violations), checking that the page
 * logged no error and broke no CSP rule, and saving a screenshot; and the
 * create form with the keyboard alone: from the Secrets screen, Tab to
 * each control, type, Space and Enter, no click and no `fill` once signed
 * in. A control that Tab cannot reach, or that does not answer its keys,
 * fails the test.
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

describe("the console's accessibility, on PGlite", runOn("pglite"), () => {
  const t = useConsole("pglite", { regions: [REGION] });

  it("visits each screen and dialog with no serious or critical axe violation", async () => {
    const { server } = t;
    const where = { region: REGION, projectId: server.projectId };
    await server.secrets.createSecret({
      ...where,
      name: "tour-secret",
      path: "/tour",
      tags: ["tour"],
      firstVersion: { data: Buffer.from("tour-value") },
    });
    await server.secrets.createSecret({
      ...where,
      name: "tour-once",
      path: "/tour",
      ephemeralPolicy: { expiresOnceAccessed: true },
      firstVersion: { data: Buffer.from("tour-once-value") },
    });
    const s = await t.session("screens");
    const { page } = s;
    await signIn(s, server.token, { screenshot: true });
    await page.getByRole("heading", { name: exactly("Projects") }).waitFor();
    await s.step("projects");
    await openSecrets(s, server.projectName, REGION);
    const view = page.getByRole("navigation", { name: "View" });
    await view.getByRole("link", { name: exactly("Folders") }).click();
    await page
      .getByRole("link", { name: exactly("tour/") })
      .first()
      .waitFor();
    await s.step("secrets folders");
    await page
      .getByRole("link", { name: exactly("tour/") })
      .first()
      .click();
    await page.getByRole("link", { name: exactly("tour-secret") }).waitFor();
    await s.step("secrets folder tour");

    await view.getByRole("link", { name: exactly("List") }).click();
    await page.getByRole("link", { name: exactly("tour-once") }).waitFor();
    await s.step("secrets list");

    await page.getByRole("link", { name: exactly("tour-once") }).click();
    await waitForCurrentTab(page, "Overview");
    await s.step("overview");
    await page.getByRole("button", { name: exactly("Delete secret") }).click();
    const confirmDelete = page.getByRole("dialog");
    await confirmDelete.waitFor();
    await s.step("delete dialog");
    await confirmDelete.getByRole("button", { name: exactly("Cancel") }).click();
    await confirmDelete.waitFor({ state: "hidden" });

    await versionsTab(page).click();
    await waitForCurrentTab(page, "Versions");
    await page.getByRole("table").waitFor();
    await s.step("versions");
    await page
      .getByRole("row", { name: "Version 1", exact: true })
      .getByRole("button", { name: exactly("Reveal") })
      .click();
    const confirmReveal = page.getByRole("dialog");
    await confirmReveal.waitFor();
    await s.step("single access dialog");
    await confirmReveal.getByRole("button", { name: exactly("Cancel") }).click();
    await confirmReveal.waitFor({ state: "hidden" });
    await page.getByRole("button", { name: CREATE_VERSION_BUTTON }).click();
    const createVersion = page.getByRole("dialog");
    await createVersion.waitFor();
    await s.step("create version dialog");
    await page.keyboard.press("Escape");
    await createVersion.waitFor({ state: "hidden" });
    await overviewTab(page).click();
    await waitForCurrentTab(page, "Overview");

    const nav = page.getByRole("navigation", { name: "Main" });
    await nav.getByRole("link", { name: exactly("Secrets") }).click();
    await page.getByRole("heading", { name: exactly("Secrets") }).waitFor();
    await page
      .getByRole("link", { name: CREATE_SECRET_LINK })
      .or(page.getByRole("button", { name: CREATE_SECRET_LINK }))
      .first()
      .click();
    await page.getByRole("form", { name: exactly("Create secret") }).waitFor();
    await s.step("create secret");

    for (const screen of ["Import", "Audit", "Tokens", "Identities"]) {
      await nav.getByRole("link", { name: exactly(screen) }).click();
      await page.getByRole("heading", { level: 1 }).first().waitFor();
      await page.waitForLoadState("networkidle");
      await s.step(screen);
    }

    await page.goto("/no/such/screen");
    await page.getByRole("heading", { level: 1 }).first().waitFor();
    await s.step("not found");
    await s.close();
  });

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
