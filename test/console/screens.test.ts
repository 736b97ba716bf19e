import { describe, it } from "vitest";
import { runOn, useConsole } from "./support.ts";
import {
  CREATE_SECRET_LINK,
  CREATE_VERSION_BUTTON,
  exactly,
  openSecrets,
  overviewTab,
  signIn,
  versionsTab,
  waitForCurrentTab,
} from "./ui.ts";

/**
 * Every screen and dialog of the console, visited as an admin on a project
 * with a few secrets: each step runs axe-core (0 serious or critical
 * violations), checks that the page logged no error and broke no CSP rule,
 * and saves a screenshot.
 */

const REGION = "fr-par";

describe("every screen of the console passes axe, on PGlite", runOn("pglite"), () => {
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

    for (const screen of ["Import", "Audit", "Tokens"]) {
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
});
