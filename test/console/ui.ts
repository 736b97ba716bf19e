import type { Locator, Page } from "playwright-core";
import { expect } from "vitest";
import type { ConsoleSession } from "../support/browser.ts";
import type { Case, FormValue } from "./cases.ts";

/**
 * What a person does in the console, as the tests do it: by accessible
 * roles, labels and the seed's wording, never by CSS classes or test ids,
 * so that a test breaks when a person could no longer find the control.
 */

/** A name matched whole, case-insensitively, with spaces flexible. */
export function exactly(text: string): RegExp {
  return new RegExp(
    `^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/ /g, "\\s+")}\\s*$`,
    "i",
  );
}

/** The create form's name field ("Secret name", or "Name"). */
export const SECRET_NAME_LABEL = /^\s*(secret\s+)?name\s*$/i;

/** The seed's "+ Create secret" (the "+" may be an icon). */
export const CREATE_SECRET_LINK = /^\s*\+?\s*create secret\s*$/i;
/** The seed's "+ Create version". */
export const CREATE_VERSION_BUTTON = /^\s*\+?\s*create version\s*$/i;

/** The sign-in form's token field. */
export function tokenField(page: Page): Locator {
  return page.getByLabel(/token/i);
}

/** Opens the console and signs in with `token`; waits until the sign-in form is gone. */
export async function signIn(
  s: ConsoleSession,
  token: string,
  options: { screenshot?: boolean } = {},
): Promise<void> {
  const { page } = s;
  await page.goto("/");
  await tokenField(page).waitFor();
  if (options.screenshot) await s.step("sign in", { readme: "sign-in" });
  await tokenField(page).fill(token);
  await page.getByRole("button", { name: /sign in/i }).click();
  await page.getByRole("button", { name: exactly("Sign out") }).waitFor();
}

/** Signs out and waits for the sign-in form. */
export async function signOut(s: ConsoleSession): Promise<void> {
  await s.page.getByRole("button", { name: exactly("Sign out") }).click();
  await tokenField(s.page).waitFor();
}

/**
 * From the Projects screen (where the console lands after sign-in): chooses
 * the region, then the project by name, and waits for its Secrets screen.
 */
export async function openSecrets(
  s: ConsoleSession,
  projectName: string,
  region?: string,
): Promise<void> {
  const { page } = s;
  await page.getByRole("heading", { name: exactly("Projects") }).waitFor();
  if (region !== undefined) {
    await selectOption(page.getByRole("combobox", { name: exactly("Region") }), region);
  }
  await page.getByRole("link", { name: projectName }).first().click();
  await page.getByRole("heading", { name: exactly("Secrets") }).waitFor();
}

/** Chooses `label` in a native select or in an ARIA combobox/listbox. */
export async function selectOption(field: Locator, label: string | RegExp): Promise<void> {
  const tag = await field.evaluate((el) => el.tagName.toLowerCase());
  if (tag === "select") {
    const options = await field.locator("option").allTextContents();
    const match =
      options.find((o) =>
        typeof label === "string" ? o.trim() === label : label.test(o.trim()),
      ) ?? options.find((o) => typeof label === "string" && o.trim().startsWith(`${label} `));
    if (match === undefined) {
      throw new Error(`no option ${String(label)} among ${JSON.stringify(options)}`);
    }
    await field.selectOption({ label: match });
    return;
  }
  await field.click();
  await field.page().getByRole("option", { name: label }).first().click();
}

/** Checks or unchecks a toggle (a checkbox or a switch) found by its label. */
export async function setToggle(scope: Locator, name: RegExp, on: boolean): Promise<void> {
  const toggle = scope
    .getByRole("switch", { name })
    .or(scope.getByRole("checkbox", { name }))
    .first();
  if ((await toggle.isChecked()) !== on) await toggle.click();
  if ((await toggle.isChecked()) !== on)
    throw new Error(`the toggle ${String(name)} did not change`);
}

/** Fills the value form of a type (the secret's or a version's), typed by hand. */
export async function fillValue(scope: Locator | Page, value: FormValue): Promise<void> {
  switch (value.kind) {
    case "opaque":
      if ("file" in value) {
        await scope.getByRole("radio", { name: exactly("Import from a file") }).check();
        await scope.getByLabel(exactly("Secret file")).setInputFiles({
          name: value.file.name,
          mimeType: "application/octet-stream",
          buffer: value.file.bytes,
        });
        // The form says what it read: the file's name and size.
        await scope
          .getByText(`${value.file.bytes.length.toLocaleString("en-US")} bytes`)
          .first()
          .waitFor();
        return;
      }
      await scope.getByLabel(exactly("Secret value")).fill(value.text);
      return;
    case "certificate":
      await scope.getByLabel(exactly("Certificate (PEM)")).fill(value.pem);
      return;
    case "key_value": {
      for (const [index, [key, val]] of value.rows.entries()) {
        const keys = scope.getByLabel(/^key \d+$/i);
        if ((await keys.count()) <= index) {
          await scope.getByRole("button", { name: exactly("Add a row") }).click();
        }
        await keys.nth(index).fill(key);
        await scope
          .getByLabel(/^value \d+$/i)
          .nth(index)
          .fill(val);
      }
      return;
    }
    case "basic_credentials":
      await scope.getByLabel(exactly("Username")).fill(value.username);
      await scope.getByLabel(exactly("Password")).fill(value.password);
      return;
    case "database_credentials":
      await selectOption(scope.getByLabel(exactly("Engine")), value.engine);
      await scope.getByLabel(exactly("Host")).fill(value.host);
      await scope.getByLabel(exactly("Port")).fill(value.port);
      await scope.getByLabel(exactly("Database name")).fill(value.dbname);
      await scope.getByLabel(exactly("Username")).fill(value.username);
      await scope.getByLabel(exactly("Password")).fill(value.password);
      return;
    case "ssh_key":
      await scope.getByLabel(exactly("SSH private key")).fill(value.sshPrivateKey);
      return;
  }
}

/**
 * The seed's "How to create a secret", from the Secrets screen to the
 * secret's Overview tab, a screenshot per step (`readme` marks the
 * ones the README shows).
 */
export async function createSecretThroughForm(
  s: ConsoleSession,
  c: Case,
  region: string,
  options: { readme?: boolean } = {},
): Promise<void> {
  const { page } = s;
  // 2. Click + Create secret.
  await page
    .getByRole("link", { name: CREATE_SECRET_LINK })
    .or(page.getByRole("button", { name: CREATE_SECRET_LINK }))
    .first()
    .click();
  const form = createSecretForm(page);
  await form.waitFor();
  await s.step(`${c.kind} form`);
  // 3. Choose the region ("cannot be moved after creation").
  await selectOption(form.getByRole("combobox", { name: exactly("Region") }), region);
  await form
    .getByText(/cannot be moved/i)
    .first()
    .waitFor();
  // 4. Manually or from a file; the type, and its value.
  await form.getByRole("radio", { name: exactly("Add manually") }).check();
  await chooseType(form, c.label);
  await fillValue(form, c.first);
  await s.step(`${c.kind} value`);
  // 5. The path; 6. the name and tags.
  await form.getByLabel(exactly("Path")).fill(c.path);
  await form.getByLabel(SECRET_NAME_LABEL).fill(c.name);
  if (c.tags.length > 0) await form.getByLabel(/^\s*tags/i).fill(c.tags.join(", "));
  // 7. Protection; 8. the ephemeral policy.
  await setToggle(form, exactly("Enable secret protection"), c.protected);
  if (c.ephemeral !== undefined && "singleAccess" in c.ephemeral) {
    await setToggle(form, /enable single access/i, true);
  }
  if (c.ephemeral !== undefined && "ttl" in c.ephemeral) {
    await setToggle(form, /enable time to live/i, true);
    await form.getByLabel(exactly("Time to live")).fill(String(c.ephemeral.ttl.amount));
    await selectOption(form.getByLabel(exactly("Unit")), c.ephemeral.ttl.unit);
  }
  if (options.readme) {
    // The README shows the form from its top: the region, the value's source and the types.
    await page.evaluate("window.scrollTo(0, 0)");
  }
  await s.step(`${c.kind} filled`, options.readme ? { readme: "create-secret" } : {});
  // 9. Click Create secret: the Overview tab displays.
  await form.getByRole("button", { name: exactly("Create secret") }).click();
  await waitForCurrentTab(page, "Overview");
  await page.getByRole("heading", { name: exactly(c.name) }).waitFor();
  await s.step(`${c.kind} overview`, options.readme ? { readme: "overview" } : {});
}

/** The Create secret form (a form named by its heading). */
export function createSecretForm(page: Page): Locator {
  return page.getByRole("form", { name: exactly("Create secret") });
}

/** Chooses a secret type among the form's radio cards. */
export async function chooseType(scope: Locator, label: RegExp): Promise<void> {
  await scope.getByRole("radio", { name: label }).check();
}

/** A secret's tab (Overview, Versions): a tab, or a link of the tabs' nav. */
export function secretTab(page: Page, name: "Overview" | "Versions"): Locator {
  return page
    .getByRole("tab", { name: exactly(name) })
    .or(page.getByRole("navigation", { name: "Secret" }).getByRole("link", { name: exactly(name) }))
    .first();
}

export function overviewTab(page: Page): Locator {
  return secretTab(page, "Overview");
}

export function versionsTab(page: Page): Locator {
  return secretTab(page, "Versions");
}

/** Waits until the tab is the current one (aria-selected or aria-current). */
export async function waitForCurrentTab(page: Page, name: "Overview" | "Versions"): Promise<void> {
  const tab = secretTab(page, name);
  await tab.waitFor();
  await page.waitForFunction(
    (el) =>
      el?.getAttribute("aria-selected") === "true" || el?.getAttribute("aria-current") === "page",
    await tab.elementHandle(),
  );
}

/**
 * The seed's "How to add a secret version": Versions tab, + Create version,
 * the value by hand, the Enable toggle, Create version.
 */
export async function createVersionThroughDialog(
  s: ConsoleSession,
  label: string,
  value: FormValue,
  enabled: boolean,
): Promise<void> {
  const { page } = s;
  await versionsTab(page).click();
  await waitForCurrentTab(page, "Versions");
  await page.getByRole("table").first().waitFor();
  await s.step(`${label} versions`);
  await page.getByRole("button", { name: CREATE_VERSION_BUTTON }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  // "Add manually" is the default; fillValue switches to "Import from a file" for a file.
  expect(await dialog.getByRole("radio", { name: exactly("Add manually") }).isChecked()).toBe(true);
  await fillValue(dialog, value);
  const enable = dialog.getByRole("switch", { name: exactly("Enable") });
  // The seed: the version is enabled by default.
  if (!(await enable.isChecked())) throw new Error("the Enable toggle is not on by default");
  if (!enabled) await enable.click();
  await s.step(`${label} create version`);
  await dialog.getByRole("button", { name: exactly("Create version") }).click();
  await dialog.waitFor({ state: "hidden" });
}

/** The row of a version in the Versions table, by revision ("Version 2"). */
export function versionRow(page: Page, revision: number): Locator {
  return page.getByRole("row", { name: `Version ${revision}`, exact: true });
}

/** Opens a secret from the Secrets screen's flat list, by its name. */
export async function openSecret(page: Page, name: string): Promise<void> {
  await page
    .getByRole("navigation", { name: "View" })
    .getByRole("link", { name: exactly("List") })
    .click();
  await page
    .getByRole("link", { name: exactly(name) })
    .first()
    .click();
  await waitForCurrentTab(page, "Overview");
}
