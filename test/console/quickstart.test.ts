import { describe, expect, it } from "vitest";
import { urlsCarrying } from "../support/browser.ts";
import { type Case, quickstartCases, secretPartsOf } from "./cases.ts";
import { revealSingleAccessOnce } from "./flows.ts";
import { type Backend, runOn, useConsole } from "./support.ts";
import {
  createSecretThroughForm,
  createVersionThroughDialog,
  exactly,
  openSecrets,
  signIn,
  versionRow,
} from "./ui.ts";
import { verifyCase } from "./verify.ts";

/**
 * The seed's quickstart (shared/seed/secret-manager-quickstart.txt), done in
 * the console by clicks, for each secret type: "+ Create secret", region,
 * value by hand, type, path, name and tags, protection, single access or a
 * time to live, "Create secret" → Overview; then the Versions tab,
 * "+ Create version", the Enable toggle, "Create version". After each
 * walk a plain gRPC client checks that the server holds exactly what was
 * asked. Every type on PGlite (two regions, the second chosen for half of
 * them); a shorter walk on Postgres.
 */

/** The walk of each case, on a server of `backend`; returns the file's fixture for more tests. */
function walk(backend: Backend, cases: Case[]) {
  const t = useConsole(backend);
  it.each(cases.map((c, i) => ({ c, i, label: c.kind })))(
    "creates a $label secret and a second version by clicks",
    async ({ c, i }) => {
      const { server } = t;
      // Half the secrets go to the region that is not the default.
      const region = server.regions[i % server.regions.length] ?? "fr-par";
      const s = await t.session(`quickstart-${c.kind}`);
      const readme = backend === "pglite" && i === 0;
      await signIn(s, server.token, { screenshot: readme });
      await openSecrets(s, server.projectName, region);
      await s.step("secrets");
      await createSecretThroughForm(s, c, region, { readme });
      await createVersionThroughDialog(s, c.kind, c.second, c.secondEnabled);
      await versionRow(s.page, 2).waitFor();
      await s.step(`${c.kind} versions after`, readme ? { readme: "versions" } : {});

      await verifyCase(server.secrets, c, { region, projectId: server.projectId });
      if (backend === "pglite" && i === cases.length - 1) {
        // The README's picture of the Secrets list, once the walk has filled it.
        await s.page
          .getByRole("navigation", { name: "Main" })
          .getByRole("link", { name: exactly("Secrets") })
          .click();
        await s.page
          .getByRole("navigation", { name: "View" })
          .getByRole("link", { name: exactly("List") })
          .click();
        await s.page.getByRole("link", { name: exactly(c.name) }).waitFor();
        await s.step("secrets list", { readme: "secrets" });
      }

      const leaks = urlsCarrying(s.allUrls(), [
        server.token,
        ...secretPartsOf(c.first),
        ...secretPartsOf(c.second),
      ]);
      expect(leaks, "URLs carrying the token or a payload").toEqual([]);
      const stored = await s.storage();
      expect(JSON.stringify(stored.localStorage)).not.toContain(server.token);
      expect(stored.cookies).toEqual([]);
      for (const part of [...secretPartsOf(c.first), ...secretPartsOf(c.second)]) {
        expect(JSON.stringify(stored)).not.toContain(part);
      }
      await s.close();
    },
  );
  return t;
}

describe("the quickstart in the console, every type, on PGlite", runOn("pglite"), () => {
  walk("pglite", quickstartCases());
});

describe("the quickstart in the console, on Postgres", runOn("postgres"), () => {
  const cases = quickstartCases();
  const t = walk(
    "postgres",
    cases.filter((c) => c.kind === "database_credentials" || c.kind === "key_value"),
  );
  // The single-access read is one SQL statement on each backend: once more, on Postgres.
  it("reveals a single-access version once, then refuses", async () => {
    await revealSingleAccessOnce(t.server, await t.session("single-access"), "fr-par");
  });
});
