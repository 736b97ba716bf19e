import { randomBytes } from "node:crypto";
import { Role, SecretType, VersionStatus } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { urlsCarrying } from "../support/browser.ts";
import { REFUSED_CALL, revealSingleAccessOnce } from "./flows.ts";
import { runOn, useConsole } from "./support.ts";
import {
  CREATE_SECRET_LINK,
  chooseType,
  createSecretForm,
  exactly,
  openSecret,
  openSecrets,
  overviewTab,
  SECRET_NAME_LABEL,
  signIn,
  versionRow,
  versionsTab,
  waitForCurrentTab,
} from "./ui.ts";
import { findSecret } from "./verify.ts";

/**
 * What the console refuses and what it keeps from view, each checked in
 * the browser and then over gRPC: a file over 64 KiB, a path without "/",
 * deleting a protected secret, a single-access version revealed twice, a
 * version with a time to live, disabling the latest version, a read_only
 * token, Reveal and Copy.
 */

const REGION = "fr-par";

/** The names of the API methods the page called, in order ("SecretService/CreateSecret"). */
function calledMethods(urls: string[]): string[] {
  return urls
    .map((u) => /\/coffer\.[\w.]+\.(\w+Service\/\w+)/.exec(new URL(u).pathname)?.[1])
    .filter((m): m is string => m !== undefined);
}

describe("the console's refusals and reveals, on PGlite", runOn("pglite"), () => {
  const t = useConsole("pglite", { regions: [REGION] });
  const where = () => ({ region: REGION, projectId: t.server.projectId });

  /** Creates a secret over gRPC for a test to open in the console. */
  async function seedSecret(
    name: string,
    path: string,
    data: string,
    extra: Record<string, unknown> = {},
  ) {
    const { secret } = await t.server.secrets.createSecret({
      ...where(),
      name,
      path,
      firstVersion: { data: Buffer.from(data) },
      ...extra,
    });
    if (secret === undefined) throw new Error("CreateSecret returned no secret");
    return secret;
  }

  it("refuses a 65,537-byte file before sending it, and a path without a leading / as it is typed", async () => {
    const { server } = t;
    const s = await t.session("refusals");
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await s.page
      .getByRole("link", { name: CREATE_SECRET_LINK })
      .or(s.page.getByRole("button", { name: CREATE_SECRET_LINK }))
      .first()
      .click();
    const form = createSecretForm(s.page);
    await form.waitFor();

    // A path without "/": refused while typing, with the server's rule quoted.
    const pathField = form.getByLabel(exactly("Path"));
    await pathField.fill("");
    await pathField.pressSequentially("app/db");
    const pathError = form.getByText(/must start with "\/"/).first();
    await pathError.waitFor();
    expect(await pathField.getAttribute("aria-invalid")).toBe("true");
    await s.step("path without slash");
    await pathField.fill("/app/db");
    await pathError.waitFor({ state: "hidden" });
    expect(await pathField.getAttribute("aria-invalid")).not.toBe("true");

    // A file of 65,537 bytes: refused by its size, before a byte is sent.
    await form.getByLabel(SECRET_NAME_LABEL).fill("too-big");
    await chooseType(form, /^opaque$/i);
    await form.getByRole("radio", { name: exactly("Import from a file") }).check();
    const before = s.requests.length;
    await form.getByLabel(exactly("Secret file")).setInputFiles({
      name: "big.bin",
      mimeType: "application/octet-stream",
      buffer: randomBytes(65_537),
    });
    await s.page
      .getByText(/65,537 bytes/)
      .first()
      .waitFor();
    await s.page
      .getByText(/64 KiB/)
      .first()
      .waitFor();
    await s.step("file too large");
    await form.getByRole("button", { name: exactly("Create secret") }).click();
    await s.page.waitForTimeout(300);
    expect(calledMethods(s.requests.slice(before).map((r) => r.url()))).not.toContain(
      "SecretService/CreateSecret",
    );
    const { secrets } = await server.secrets.listSecrets({ ...where(), name: "too-big" });
    expect(secrets).toEqual([]);
    await s.close();
  });

  it("shows the server's refusal of a name already taken next to the name field", async () => {
    const { server } = t;
    await seedSecret("taken", "/dup", "first");
    const s = await t.session("name-taken");
    s.allowedErrors.push(REFUSED_CALL);
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await s.page
      .getByRole("link", { name: CREATE_SECRET_LINK })
      .or(s.page.getByRole("button", { name: CREATE_SECRET_LINK }))
      .first()
      .click();
    const form = createSecretForm(s.page);
    await form.getByLabel(exactly("Secret value")).fill("second");
    await form.getByLabel(exactly("Path")).fill("/dup");
    const name = form.getByLabel(SECRET_NAME_LABEL);
    await name.fill("taken");
    await form.getByRole("button", { name: exactly("Create secret") }).click();
    await form
      .getByText(/already exists/)
      .first()
      .waitFor();
    expect(await name.getAttribute("aria-invalid")).toBe("true");
    // The message is the field's description, so a screen reader reads it with the field.
    const describedBy = (await name.getAttribute("aria-describedby")) ?? "";
    const description = await Promise.all(
      describedBy
        .split(/\s+/)
        .filter(Boolean)
        .map((id) => s.page.locator(`[id="${id}"]`).textContent()),
    );
    expect(description.join(" ")).toMatch(/already exists/);
    await s.step("name taken");
    const { secrets } = await server.secrets.listSecrets({ ...where(), path: "/dup" });
    expect(secrets.map((x) => x.name)).toEqual(["taken"]);
    await s.close();
  });

  it("says so when the connection is lost, and retries reads until it is back", async () => {
    const { server } = t;
    await seedSecret("steady", "/net", "steady-value");
    const s = await t.session("connection-lost");
    // The browser logs each failed request: expected while the connection is down.
    s.allowedErrors.push(/net::ERR_/);
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    // Every API call fails as if the server were down.
    const api = /\/coffer\.[\w.]+\.\w+Service\//;
    await s.page.route(api, (route) => route.abort("connectionrefused"));
    await s.page
      .getByRole("navigation", { name: "View" })
      .getByRole("link", { name: exactly("Folders") })
      .click();
    await s.page
      .getByText(/connection to the server lost/i)
      .first()
      .waitFor();
    await s.step("connection lost");
    // Back: the read is retried, with no click.
    await s.page.unroute(api);
    await s.page.getByRole("link", { name: exactly("net/") }).waitFor({ timeout: 30_000 });
    expect(await s.page.getByText(/connection to the server lost/i).count()).toBe(0);
    await s.step("connection back");
    await s.close();
  });

  it("refuses to delete a protected secret, showing the server's message", async () => {
    const { server } = t;
    const secret = await seedSecret("guarded", "/protected", "keep-me", { protected: true });
    const s = await t.session("protected-delete");
    s.allowedErrors.push(REFUSED_CALL);
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await openSecret(s.page, "guarded");
    await s.page.getByRole("button", { name: exactly("Delete secret") }).click();
    // A confirmation first, as every console asks before deleting.
    const dialog = s.page.getByRole("dialog").or(s.page.getByRole("alertdialog")).first();
    await dialog.waitFor();
    const confirmName = dialog.getByRole("textbox");
    if ((await confirmName.count()) > 0) await confirmName.first().fill("guarded");
    await dialog
      .getByRole("button", { name: /delete/i })
      .last()
      .click();
    await s.page
      .getByText(/secret is protected/i)
      .first()
      .waitFor();
    await s.step("protected delete refused");
    const still = await server.secrets.getSecret({ ...where(), secretId: secret.id });
    expect(still.secret?.deletionRequestedAt).toBeUndefined();
    await s.close();
  });

  it("deletes a secret (scheduled for deletion), lists it under that filter, and restores it", async () => {
    const { server } = t;
    const secret = await seedSecret("disposable", "/trash", "bye");
    await seedSecret("keeper", "/trash", "stay");
    const s = await t.session("delete-restore");
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await openSecret(s.page, "disposable");
    await s.page.getByRole("button", { name: exactly("Delete secret") }).click();
    const dialog = s.page.getByRole("dialog");
    await dialog.getByRole("button", { name: exactly("Delete") }).click();
    await dialog.waitFor({ state: "hidden" });
    await s.page.getByText("Scheduled for deletion").first().waitFor();
    await s.step("scheduled for deletion");
    const deleted = await server.secrets.getSecret({ ...where(), secretId: secret.id });
    expect(deleted.secret?.deletionRequestedAt).toBeDefined();

    // The list hides it, unless asked for what is scheduled for deletion.
    await s.page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: exactly("Secrets") })
      .click();
    await s.page
      .getByRole("navigation", { name: "View" })
      .getByRole("link", { name: exactly("List") })
      .click();
    await s.page.getByRole("link", { name: exactly("keeper") }).waitFor();
    // The list may first show what it held before the delete, then its fresh read.
    await s.page.getByRole("link", { name: exactly("disposable") }).waitFor({ state: "detached" });
    await s.page.getByRole("checkbox", { name: /scheduled for deletion/i }).check();
    await s.page.getByRole("button", { name: exactly("Apply filters") }).click();
    await s.page.getByRole("link", { name: exactly("disposable") }).click();
    await waitForCurrentTab(s.page, "Overview");

    await s.page.getByRole("button", { name: exactly("Restore secret") }).click();
    await s.page.getByRole("button", { name: exactly("Delete secret") }).waitFor();
    await s.step("restored");
    const restored = await server.secrets.getSecret({ ...where(), secretId: secret.id });
    expect(restored.secret?.deletionRequestedAt).toBeUndefined();
    await s.close();
  });

  it("reveals on demand, hides after 30 s and on navigation, copies without showing, and keeps no payload", async () => {
    const { server } = t;
    const payload = `reveal-me-${randomBytes(8).toString("hex")}`;
    await seedSecret("revealed", "/reveal", payload);
    const s = await t.session("reveal");
    await s.context.grantPermissions(["clipboard-read", "clipboard-write"], {
      origin: server.baseUrl,
    });
    // The page's clock, under the test's hand: 30 s pass in an instant.
    await s.page.clock.install();
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await openSecret(s.page, "revealed");
    await versionsTab(s.page).click();
    const row = versionRow(s.page, 1);
    await row.waitFor();
    expect(await s.page.getByText(payload).count(), "masked by default").toBe(0);
    await row.getByRole("button", { name: exactly("Reveal") }).click();
    await s.page.getByText(payload).first().waitFor();
    // From here the page's time moves only when the test says (an installed
    // clock otherwise follows real time, which a loaded machine stretches).
    // Paused a second ahead of the page's clock: pausing at the time just
    // read fails ("Cannot fast-forward to the past") when the page's clock
    // moved on before pauseAt reached it.
    await s.page.clock.pauseAt(((await s.page.evaluate("Date.now()")) as number) + 1_000);
    // Shown for 30 s, then hidden again (the margin covers the second ahead
    // and the real time between the reveal and the pause).
    await s.page.clock.runFor(25_000);
    expect(await s.page.getByText(payload).count(), "still shown at 25 s").toBeGreaterThan(0);
    await s.page.clock.runFor(6_000);
    await s.page.getByText(payload).waitFor({ state: "detached" });
    // Time flows again (a step waits for an animation frame), and Reveal is offered again.
    await s.page.clock.resume();
    await row.getByRole("button", { name: exactly("Reveal") }).click();
    await s.page.getByText(payload).first().waitFor();
    await s.step("revealed", { readme: "reveal" });

    // Hidden again on navigation, and not kept in any storage.
    await overviewTab(s.page).click();
    await versionsTab(s.page).click();
    await versionRow(s.page, 1).waitFor();
    expect(await s.page.getByText(payload).count(), "hidden after navigation").toBe(0);
    expect(JSON.stringify(await s.storage())).not.toContain(payload);

    // Copy: to the clipboard, never on screen, with "Copied" feedback.
    await versionRow(s.page, 1)
      .getByRole("button", { name: exactly("Copy") })
      .click();
    await s.page
      .getByText(/copied/i)
      .first()
      .waitFor();
    expect(await s.page.getByText(payload).count(), "Copy does not show the value").toBe(0);
    expect(await s.page.evaluate("navigator.clipboard.readText()")).toBe(payload);
    await s.step("copied");
    expect(urlsCarrying(s.allUrls(), [payload, server.token])).toEqual([]);
    await s.close();
  });

  it("warns before revealing a single-access version, reveals it once, then refuses", async () => {
    await revealSingleAccessOnce(t.server, await t.session("single-access"), REGION);
  });

  it("creates a version under a time to live, and disabling the latest makes the previous the latest enabled", async () => {
    const { server } = t;
    const secret = await seedSecret("rotating", "/ttl", "v1-value", {
      ephemeralPolicy: { timeToLive: { seconds: 3600n } },
    });
    const s = await t.session("ttl-and-disable");
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await openSecret(s.page, "rotating");
    // The Overview names the policy.
    await s.page
      .getByText(/^1 (h|hour) after a version is created/)
      .first()
      .waitFor();
    await versionsTab(s.page).click();
    await s.page
      .getByRole("button", { name: /create version/i })
      .first()
      .click();
    const dialog = s.page.getByRole("dialog");
    await dialog.getByLabel(exactly("Secret value")).fill("v2-value");
    await dialog.getByRole("button", { name: exactly("Create version") }).click();
    await dialog.waitFor({ state: "hidden" });
    const row2 = versionRow(s.page, 2);
    await row2.waitFor();
    // The table shows when the new version expires.
    expect(await row2.textContent()).toMatch(/expires|in 1 hour|59 min|60 min|\d{2}:\d{2}/i);
    await s.step("ttl version");

    const v2 = await server.secrets.getSecretVersion({
      ...where(),
      secretId: secret.id,
      revision: "2",
    });
    const expiresIn =
      Number(v2.version?.ephemeralProperties?.expiresAt?.seconds) * 1000 - Date.now();
    expect(expiresIn).toBeGreaterThan(3_500_000);
    expect(expiresIn).toBeLessThanOrEqual(3_600_000);

    // Disable revision 2 from its row: "latest_enabled" is revision 1 again.
    await row2
      .getByRole("button", { name: exactly("Disable") })
      .or(row2.getByRole("button", { name: /actions|more/i }))
      .first()
      .click();
    const menuItem = s.page.getByRole("menuitem", { name: exactly("Disable") });
    if ((await menuItem.count()) > 0) await menuItem.click();
    const confirm = s.page.getByRole("dialog").or(s.page.getByRole("alertdialog"));
    if ((await confirm.count()) > 0)
      await confirm
        .first()
        .getByRole("button", { name: /disable/i })
        .click();
    await row2
      .getByText(/disabled/i)
      .first()
      .waitFor();
    // The table now marks revision 1 as the latest enabled one.
    await versionRow(s.page, 1).getByText("Latest enabled").waitFor();
    expect(await row2.getByText("Latest enabled").count()).toBe(0);
    await s.step("latest disabled");
    const latestEnabled = await server.secrets.accessSecretVersion({
      ...where(),
      secretId: secret.id,
      revision: "latest_enabled",
    });
    expect(latestEnabled.revision).toBe(1);
    expect(Buffer.from(latestEnabled.data).toString()).toBe("v1-value");
    const v2After = await server.secrets.getSecretVersion({
      ...where(),
      secretId: secret.id,
      revision: "2",
    });
    expect(VersionStatus[v2After.version?.status ?? 0]).toBe("DISABLED");
    expect(v2After.version?.latest).toBe(true);
    await s.close();
  });

  it("shows a read_only token no Reveal and never asks for a payload", async () => {
    const { server } = t;
    const payload = `ro-${randomBytes(8).toString("hex")}`;
    await seedSecret("metadata-only", "/ro", payload, { type: SecretType.OPAQUE });
    const created = await server.admin.createToken({
      name: "console-read-only",
      grants: [{ projectId: server.projectId, role: Role.READ_ONLY }],
    });
    const s = await t.session("read-only");
    await signIn(s, created.value);
    await openSecrets(s, server.projectName, REGION);
    await openSecret(s.page, "metadata-only");
    await versionsTab(s.page).click();
    await versionRow(s.page, 1).waitFor();
    expect(await s.page.getByRole("button", { name: exactly("Reveal") }).count()).toBe(0);
    expect(await s.page.getByRole("button", { name: exactly("Copy") }).count()).toBe(0);
    expect(await s.page.getByRole("button", { name: CREATE_SECRET_LINK }).count()).toBe(0);
    await s.step("read only versions");
    const methods = calledMethods(s.requests.map((r) => r.url()));
    expect(
      methods.filter((m) => /Access/.test(m)),
      "payload reads",
    ).toEqual([]);
    expect(await s.page.getByText(payload).count()).toBe(0);
    expect(urlsCarrying(s.allUrls(), [created.value, payload])).toEqual([]);
    // The server agrees: this token gets no payload.
    const secret = await findSecret(server.secretsAs(created.value), {
      ...where(),
      path: "/ro",
      name: "metadata-only",
    });
    await expect(
      server
        .secretsAs(created.value)
        .accessSecretVersion({ ...where(), secretId: secret.id, revision: "1" }),
    ).rejects.toThrow(/permission/i);
    await s.close();
  });
});
