import { randomBytes } from "node:crypto";
import { VersionStatus } from "@coffer/api";
import { expect } from "vitest";
import type { ConsoleSession } from "../support/browser.ts";
import type { ConsoleServer } from "./support.ts";
import {
  exactly,
  openSecret,
  openSecrets,
  overviewTab,
  signIn,
  versionRow,
  versionsTab,
} from "./ui.ts";

/**
 * Walks the browser tests run on both backends: each creates what it needs
 * over gRPC, drives the console in `s`, checks over gRPC, and closes `s`.
 */

/** The browser's log line for a refused call. */
export const REFUSED_CALL = /Failed to load resource: the server responded with a status of 4\d\d/;

/**
 * A single-access version: the console warns before revealing it, reveals
 * it once (the server consumes it), then offers no second read, and the
 * server refuses one.
 */
export async function revealSingleAccessOnce(
  server: ConsoleServer,
  s: ConsoleSession,
  region: string,
): Promise<void> {
  const where = { region, projectId: server.projectId };
  const payload = `once-${randomBytes(8).toString("hex")}`;
  const { secret } = await server.secrets.createSecret({
    ...where,
    name: "one-time",
    path: "/once",
    ephemeralPolicy: { expiresOnceAccessed: true },
    firstVersion: { data: Buffer.from(payload) },
  });
  if (secret === undefined) throw new Error("CreateSecret returned no secret");
  s.allowedErrors.push(REFUSED_CALL);
  await signIn(s, server.token);
  await openSecrets(s, server.projectName, region);
  await openSecret(s.page, "one-time");
  await versionsTab(s.page).click();
  await versionRow(s.page, 1)
    .getByRole("button", { name: exactly("Reveal") })
    .click();
  // Revealing consumes it: the console asks first.
  const confirm = s.page.getByRole("dialog").or(s.page.getByRole("alertdialog")).first();
  await confirm.waitFor();
  expect(await confirm.textContent()).toMatch(/single access|only once|once/i);
  await s.step("single access warning");
  await confirm.getByRole("button", { name: /reveal/i }).click();
  await s.page.getByText(payload).first().waitFor();
  await s.step("single access revealed");

  const version = await server.secrets.getSecretVersion({
    ...where,
    secretId: secret.id,
    revision: "1",
  });
  expect(VersionStatus[version.version?.status ?? 0], "consumed").not.toBe("ENABLED");

  // Hide (navigate away and back): the console offers no second read, and
  // the server refuses one.
  await overviewTab(s.page).click();
  await versionsTab(s.page).click();
  const row = versionRow(s.page, 1);
  await row.waitFor();
  expect(await row.getByRole("button", { name: exactly("Reveal") }).count()).toBe(0);
  expect(await row.getByRole("button", { name: exactly("Copy") }).count()).toBe(0);
  expect(await row.textContent()).toMatch(/not readable/i);
  await expect(
    server.secrets.accessSecretVersion({ ...where, secretId: secret.id, revision: "1" }),
  ).rejects.toThrow(/disabled|not enabled|consumed|precondition/i);
  expect(await s.page.getByText(payload).count(), "not shown a second time").toBe(0);
  await s.step("single access refused");
  await s.close();
}
