import { timestampDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { Role, SecretType } from "@coffer/api";
import { authClient, startOidcIssuer, trustTestIssuer } from "@coffer/server/testing";
import { describe, expect, it } from "vitest";
import { urlsCarrying } from "../support/browser.ts";
import { runOn, useConsole } from "./support.ts";
import { exactly, openSecrets, selectOption, signIn } from "./ui.ts";

/**
 * The admins' screens and bulk import: a token created in the console (its
 * value shown once, then usable, with exactly the grant asked for) and
 * revoked there; the audit trail showing a payload read done over gRPC; a
 * pasted JSON file previewed (new, existing, refused) and imported row by
 * row; a workload's sign-in with a JWT, accepted and refused, in the audit
 * trail and the token list. Each checked over gRPC.
 */

const REGION = "fr-par";

describe("the console's Tokens, Audit and Import screens, on PGlite", runOn("pglite"), () => {
  const t = useConsole("pglite", { regions: [REGION] });

  it("creates a read-only token shown once, which then works as granted, and revokes it", async () => {
    const { server } = t;
    const s = await t.session("tokens");
    const { page } = s;
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: exactly("Tokens") })
      .click();
    const form = page.getByRole("form", { name: exactly("Create a token") });
    await form.waitFor();
    await form.getByLabel(exactly("Name")).fill("ci-reader");
    await selectOption(form.getByLabel(exactly("Project (grant 1)")), server.projectName);
    await selectOption(form.getByLabel(exactly("Role (grant 1)")), "Read only");
    await form.getByLabel(/^Folder \(grant 1/).fill("/ci");
    await s.step("create token");
    await form.getByRole("button", { name: exactly("Create token") }).click();

    const valueField = page.getByLabel(exactly("Token"), { exact: true });
    await valueField.waitFor();
    const value = await valueField.inputValue();
    expect(value).toMatch(/^coffer_/);
    await s.step("token created");

    // The grant is exactly what was asked, and the value works as it says.
    const { tokens } = await server.admin.listTokens({ projectId: server.projectId });
    const made = tokens.find((tk) => tk.name === "ci-reader");
    expect(made?.grants.map((g) => ({ ...g, $typeName: undefined }))).toEqual([
      {
        $typeName: undefined,
        projectId: server.projectId,
        role: Role.READ_ONLY,
        pathPrefix: "/ci",
      },
    ]);
    const where = { region: REGION, projectId: server.projectId };
    const inside = await server.secrets.createSecret({
      ...where,
      name: "in-ci",
      path: "/ci/app",
      firstVersion: { data: Buffer.from("ci-value") },
    });
    await server.secrets.createSecret({
      ...where,
      name: "outside",
      path: "/other",
      firstVersion: { data: Buffer.from("other-value") },
    });
    const seen = await server.secretsAs(value).listSecrets(where);
    expect(seen.secrets.map((x) => `${x.path}/${x.name}`)).toEqual(["/ci/app/in-ci"]);
    await expect(
      server
        .secretsAs(value)
        .accessSecretVersion({ region: REGION, secretId: inside.secret?.id ?? "", revision: "1" }),
      "read_only reads no payload",
    ).rejects.toThrow(/permission/i);

    // Done: the value is gone from the page, and never was in a URL or storage.
    await page.getByRole("button", { name: exactly("Done") }).click();
    expect(await page.getByLabel(exactly("Token"), { exact: true }).count()).toBe(0);
    expect(await page.locator(`input[value="${value}"]`).count()).toBe(0);
    expect(urlsCarrying(s.allUrls(), [value])).toEqual([]);
    expect(JSON.stringify(await s.storage())).not.toContain(value);

    // Revoke it from the list.
    const row = page.getByRole("row").filter({ hasText: "ci-reader" });
    await row.getByRole("button", { name: /revoke/i }).click();
    const confirm = page.getByRole("dialog");
    await confirm.waitFor();
    await s.step("revoke token");
    await confirm.getByRole("button", { name: exactly("Revoke token") }).click();
    await confirm.waitFor({ state: "hidden" });
    await expect(
      server.secretsAs(value).listSecrets(where),
      "a revoked token is refused",
    ).rejects.toThrow(/unauthenticated|token/i);
    await s.close();
  });

  it("creates a Scaleway-compatible key, shown once as an access key and a secret key, which works over the REST API", async () => {
    const { server } = t;
    const s = await t.session("scaleway-key");
    const { page } = s;
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: exactly("Tokens") })
      .click();
    const form = page.getByRole("form", { name: exactly("Create a token") });
    await form.waitFor();
    await form.getByLabel(exactly("Name")).fill("eso");
    await selectOption(form.getByLabel(exactly("Key format")), "Scaleway-compatible");
    await selectOption(form.getByLabel(exactly("Project (grant 1)")), server.projectName);
    await selectOption(form.getByLabel(exactly("Role (grant 1)")), "Read only");
    await s.step("create scaleway key");
    await form.getByRole("button", { name: exactly("Create token") }).click();

    const accessField = page.getByLabel(exactly("Access key"), { exact: true });
    await accessField.waitFor();
    const accessKey = await accessField.inputValue();
    const secretKey = await page.getByLabel(exactly("Secret key"), { exact: true }).inputValue();
    // The shapes Scaleway's clients check before they send a request.
    expect(accessKey).toMatch(/^SCW[A-Z0-9]{17}$/);
    expect(secretKey).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    await s.step("scaleway key created");

    await server.secrets.createSecret({
      region: REGION,
      projectId: server.projectId,
      name: "for-eso",
      path: "/eso",
    });
    const listed = await fetch(
      `${server.baseUrl}/secret-manager/v1beta1/regions/${REGION}/secrets?project_id=${server.projectId}&path=/eso`,
      { headers: { "x-auth-token": secretKey } },
    );
    expect(listed.status).toBe(200);
    expect(listed.headers.get("content-type")).toBe("application/json");
    const body = (await listed.json()) as { secrets: { name: string }[]; total_count: number };
    expect(body.secrets.map((x) => x.name)).toEqual(["for-eso"]);

    await page.getByRole("button", { name: exactly("Done") }).click();
    expect(urlsCarrying(s.allUrls(), [secretKey])).toEqual([]);
    expect(JSON.stringify(await s.storage())).not.toContain(secretKey);
    // Listed by its access key, never by its secret key.
    const row = page.getByRole("row").filter({ hasText: "eso" });
    await expect(row.textContent()).resolves.toContain(accessKey);
    await expect(row.textContent()).resolves.not.toContain(secretKey);
    await s.close();
  });

  it("shows a payload read in the project's audit trail", async () => {
    const { server } = t;
    const { secret } = await server.secrets.createSecret({
      region: REGION,
      projectId: server.projectId,
      name: "audited",
      path: "/audit",
      firstVersion: { data: Buffer.from("audited-value") },
    });
    await server.secrets.accessSecretVersion({
      region: REGION,
      secretId: secret?.id ?? "",
      revision: "1",
    });
    const s = await t.session("audit");
    const { page } = s;
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: exactly("Audit") })
      .click();
    await page
      .getByRole("cell", { name: /AccessSecretVersion/ })
      .first()
      .waitFor();
    await s.step("audit");
    expect(await page.getByText("audited-value").count(), "no payload in the audit trail").toBe(0);
    await s.close();
  });

  it("shows a workload's sign-in with a JWT, and the refused ones with their reason, in Audit and Tokens", async () => {
    const { server } = t;
    const issuer = await startOidcIssuer();
    try {
      // What an admin does with `coffer issuer create` and `coffer binding create`.
      const subject = "repo:acme/payments:ref:refs/heads/main";
      await trustTestIssuer(server.admin, issuer, {
        name: "github-actions",
        conditions: [{ claim: "sub", value: subject }],
        grants: [{ projectId: server.projectId, role: Role.SECRET_ACCESS, pathPrefix: "/deploy" }],
      });
      // A workload's exchange, over the HTTP port as the client makes it, and two refusals.
      const auth = authClient({ url: server.baseUrl });
      const jwts = [
        await issuer.sign({ claims: { sub: subject } }),
        await issuer.sign({ claims: { sub: "repo:acme/payments:ref:refs/heads/evil" } }),
        await issuer.sign({ claims: { sub: subject }, expiresInS: -3600 }),
      ];
      const [good, unbound, expired] = jwts as [string, string, string];
      const issued = await auth.exchangeToken({ jwt: good });
      // A token never outlives its JWT: this one expires within seconds.
      const shortJwt = await issuer.sign({ claims: { sub: subject }, expiresInS: 3 });
      const short = await auth.exchangeToken({ jwt: shortJwt });
      const shortEnds = timestampDate(short.token?.expiresAt ?? timestampNow()).getTime();
      expect(issued.token?.subject).toBe(subject);
      for (const jwt of [unbound, expired]) {
        await expect(auth.exchangeToken({ jwt }), "refused").rejects.toThrow(/not accepted/);
      }

      const s = await t.session("sign-in-audit");
      const { page } = s;
      await signIn(s, server.token);
      await openSecrets(s, server.projectName, REGION);
      await page
        .getByRole("navigation", { name: "Main" })
        .getByRole("link", { name: exactly("Audit") })
        .click();
      await selectOption(page.getByLabel(exactly("Method")), "ExchangeToken");
      // The accepted exchange is filed under the project its binding grants on.
      const accepted = page.getByRole("row").filter({ hasText: "ExchangeToken" });
      // Binding and token names come from their own lists: wait for both.
      await accepted
        .filter({ hasText: "Bindinggithub-actions binding" })
        .filter({ hasText: `Issued${issued.token?.prefix}…` })
        .waitFor();
      expect(await accepted.count(), "the refusals are filed under no project").toBe(2);
      const row = await accepted
        .filter({ hasText: `Issued${issued.token?.prefix}…` })
        .textContent();
      expect(row).toContain(`Subject${subject}`);
      expect(row).toContain(`Issuer${issuer.url}`);
      expect(row).toContain("Bindinggithub-actions binding");
      expect(row).toContain(`Issued${issued.token?.prefix}…`);
      await s.step("audit sign-in");

      // A global admin reads the refusals: every project's events, and none's.
      await selectOption(page.getByLabel(exactly("Projects")), "Every project");
      const refused = page.getByRole("row").filter({ hasText: "Unauthenticated" });
      await refused.filter({ hasText: "Reasonexpired" }).waitFor();
      await refused.filter({ hasText: "Reasonno binding matches" }).waitFor();
      expect(await refused.filter({ hasText: "refs/heads/evil" }).textContent()).toContain(
        "Reasonno binding matches",
      );
      await refused.first().scrollIntoViewIfNeeded();
      await s.step("audit refused sign-ins");

      await new Promise((r) => setTimeout(r, Math.max(0, shortEnds - Date.now() + 200)));
      await page
        .getByRole("navigation", { name: "Main" })
        .getByRole("link", { name: exactly("Tokens") })
        .click();
      const token = page
        .getByRole("row")
        .filter({ hasText: "Exchanged" })
        .filter({ hasText: "Bindinggithub-actions binding" });
      await token.waitFor();
      const tokenRow = await token.textContent();
      expect(tokenRow).toContain("Bindinggithub-actions binding");
      expect(tokenRow).toContain(`Subject${subject}`);
      expect(tokenRow).toContain("Active");
      expect(await token.count(), "the expired exchanged token is hidden").toBe(1);
      await page.getByLabel(exactly("Show revoked and expired tokens")).check();
      const expiredRow = token.filter({ hasText: "Expired" });
      await expiredRow.waitFor();
      expect(await expiredRow.textContent()).toContain(`${short.token?.prefix}…`);
      await token.last().scrollIntoViewIfNeeded();
      await s.step("tokens exchanged");

      // The issuer and its binding, read only, in Identities.
      await page
        .getByRole("navigation", { name: "Main" })
        .getByRole("link", { name: exactly("Identities") })
        .click();
      const issuerRow = page
        .getByRole("table", { name: "Trusted issuers" })
        .getByRole("row")
        .filter({ hasText: "github-actions" });
      await issuerRow.waitFor();
      expect(await issuerRow.textContent()).toContain(issuer.url);
      const bindingRow = page
        .getByRole("table", { name: "Identity bindings" })
        .getByRole("row")
        .filter({ hasText: "github-actions binding" });
      await bindingRow.filter({ hasText: `sub = ${subject}` }).waitFor();
      expect(await bindingRow.textContent()).toContain("/deploy and below");
      await s.step("identities");

      // No JWT (nor its signature) and no issued value anywhere the console went.
      const all = [...jwts, shortJwt];
      const secrets = [...all, ...all.map((j) => j.split(".")[2] ?? ""), issued.value, short.value];
      expect(urlsCarrying(s.allUrls(), secrets)).toEqual([]);
      const html = await page.content();
      for (const x of secrets)
        expect(html.includes(x), "no JWT or token value on the page").toBe(false);
      await s.close();
    } finally {
      await issuer.close();
    }
  });

  it("imports a pasted JSON file into a folder after a preview, row by row", async () => {
    const { server } = t;
    const where = { region: REGION, projectId: server.projectId };
    await server.secrets.createSecret({
      ...where,
      name: "API_URL",
      path: "/imported",
      firstVersion: { data: Buffer.from("https://old.example") },
    });
    const s = await t.session("bulk-import");
    const { page } = s;
    await signIn(s, server.token);
    await openSecrets(s, server.projectName, REGION);
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: exactly("Import") })
      .click();
    await page.getByRole("heading", { name: exactly("Import secrets") }).waitFor();
    await page.getByLabel(exactly("Path")).fill("/imported");
    const file = {
      API_URL: "https://new.example",
      DB_PASSWORD: "import-pw-1",
      SETTINGS: { region: "eu", replicas: 2 },
      NESTED: { deep: { x: 1 } },
    };
    await page.getByLabel(exactly("Or paste the file's content")).fill(JSON.stringify(file));
    await page.getByRole("button", { name: exactly("Preview") }).click();
    await page.getByRole("heading", { name: exactly("Preview") }).waitFor();
    const row = (name: string) =>
      page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: exactly(name) }) });
    expect(await row("API_URL").textContent()).toMatch(/already exists/i);
    expect(await row("NESTED").textContent()).toMatch(/refused/i);
    await selectOption(page.getByLabel(exactly("Action for API_URL")), "Add a new version");
    await s.step("import preview");
    // Nothing is written before "Import".
    const before = await server.secrets.listSecrets({ ...where, path: "/imported" });
    expect(before.secrets.map((x) => x.name)).toEqual(["API_URL"]);
    await page.getByRole("button", { name: /^Import \d+ secrets?$/ }).click();
    await page.getByRole("heading", { name: /result/i }).waitFor();
    await s.step("import result");

    const after = await server.secrets.listSecrets({ ...where, path: "/imported" });
    const byName = new Map(after.secrets.map((x) => [x.name, x]));
    expect([...byName.keys()].sort()).toEqual(["API_URL", "DB_PASSWORD", "SETTINGS"]);
    const read = async (name: string) => {
      const r = await server.secrets.accessSecretVersion({
        ...where,
        secretId: byName.get(name)?.id ?? "",
        revision: "latest",
      });
      return { revision: r.revision, data: Buffer.from(r.data).toString() };
    };
    expect(await read("API_URL")).toEqual({ revision: 2, data: "https://new.example" });
    expect(await read("DB_PASSWORD")).toEqual({ revision: 1, data: "import-pw-1" });
    expect(JSON.parse((await read("SETTINGS")).data)).toEqual(file.SETTINGS);
    expect(byName.get("SETTINGS")?.type).toBe(SecretType.KEY_VALUE);
    expect(urlsCarrying(s.allUrls(), ["import-pw-1", "https://new.example"])).toEqual([]);
    await s.close();
  });
});
