import { create } from "@bufbuild/protobuf";
import {
  type CreateSecretRequest,
  CreateSecretResponseSchema,
  type CreateSecretVersionRequest,
  CreateSecretVersionResponseSchema,
  type ListSecretsRequest,
  ListSecretsResponseSchema,
  SecretSchema,
  SecretType,
  SecretVersionSchema,
} from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { cleanup, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it } from "vitest";
import { descriptionOf } from "../testing/dom-helpers.ts";
import { renderWithService } from "../testing/providers.tsx";
import { BulkImportForm } from "./bulk-import-form.tsx";

const PROJECT = "0b6d4f2e-8c1a-4e3b-9f7d-2a5c6e8b1d04";

afterEach(cleanup);

function setup() {
  const lookups: ListSecretsRequest[] = [];
  const creates: CreateSecretRequest[] = [];
  const versions: CreateSecretVersionRequest[] = [];
  renderWithService(<BulkImportForm projectId={PROJECT} region="fr-par" initialPath="/app" />, {
    listSecrets: (req) => {
      lookups.push(req);
      return create(ListSecretsResponseSchema, {
        secrets: [
          create(SecretSchema, {
            id: "s-token",
            name: "TOKEN",
            path: "/app",
            type: SecretType.OPAQUE,
          }),
        ],
        totalCount: 1n,
      });
    },
    createSecret: (req) => {
      creates.push(req);
      if (req.name === "taken")
        throw new ConnectError('a secret named "taken" already exists in /app', Code.AlreadyExists);
      return create(CreateSecretResponseSchema, {
        secret: create(SecretSchema, { id: `s-${req.name}` }),
      });
    },
    createSecretVersion: (req) => {
      versions.push(req);
      return create(CreateSecretVersionResponseSchema, {
        version: create(SecretVersionSchema, { secretId: req.secretId, revision: 4 }),
      });
    },
  });
  return { user: userEvent.setup(), lookups, creates, versions };
}

const cells = (row: HTMLElement) =>
  within(row)
    .getAllByRole("cell")
    .map((c) => c.textContent);

describe("Bulk import", () => {
  it("previews each entry (type, whether it exists, action) and writes nothing before Import", async () => {
    const { user, lookups, creates, versions } = setup();
    const box = screen.getByRole("textbox", { name: "Or paste the file's content" });
    await user.click(box);
    await user.paste(
      JSON.stringify({
        TOKEN: "t-2",
        db: { user: "u", port: 5432 },
        nested: { a: { b: 1 } },
        list: [1],
      }),
    );
    await user.click(screen.getByRole("button", { name: "Preview" }));
    await screen.findByRole("heading", { name: "Preview" });
    expect(lookups[0]).toMatchObject({ projectId: PROJECT, region: "fr-par", path: "/app" });
    const rows = screen.getAllByRole("row").slice(1);
    expect(rows.map((r) => within(r).getByRole("rowheader").textContent)).toEqual([
      "TOKEN",
      "db",
      "nested",
      "list",
    ]);
    expect(cells(rows[0] as HTMLElement).slice(0, 2)).toEqual(["Opaque", "Already exists"]);
    expect(cells(rows[1] as HTMLElement).slice(0, 2)).toEqual(["Key/value", "New"]);
    expect(
      (screen.getByRole("combobox", { name: "Action for db" }) as HTMLSelectElement).value,
    ).toBe("create");
    expect(cells(rows[2] as HTMLElement)[3]).toContain('Not flat: "a" holds an object');
    expect(cells(rows[3] as HTMLElement)[3]).toContain("Holds a list");
    const action = screen.getByRole("combobox", { name: "Action for TOKEN" }) as HTMLSelectElement;
    expect(action.value).toBe("skip");
    screen.getByRole("button", { name: "Import 1 secret" });
    expect(creates).toHaveLength(0);
    expect(versions).toHaveLength(0);

    await user.selectOptions(action, "new_version");
    await user.click(screen.getByRole("button", { name: "Import 2 secrets" }));
    await screen.findByRole("heading", { name: "Result" });
    expect(creates).toHaveLength(1);
    expect(creates[0]).toMatchObject({ name: "db", path: "/app", type: SecretType.KEY_VALUE });
    expect(new TextDecoder().decode(creates[0]?.firstVersion?.data)).toBe(
      '{"user":"u","port":5432}',
    );
    expect(versions[0]?.secretId).toBe("s-token");
    expect(new TextDecoder().decode(versions[0]?.data)).toBe("t-2");
    expect(screen.getByRole("status").textContent).toBe(
      "1 created, 1 new version, 0 skipped, 2 refused, 0 failed.",
    );
    const results = screen.getAllByRole("row").slice(1);
    expect(results.map((r) => [within(r).getByRole("rowheader").textContent, cells(r)[0]])).toEqual(
      [
        ["TOKEN", "New version"],
        ["db", "Created"],
        ["nested", "Refused"],
        ["list", "Refused"],
      ],
    );
    // The values are gone from the page once written.
    expect(
      (screen.getByRole("textbox", { name: "Or paste the file's content" }) as HTMLTextAreaElement)
        .value,
    ).toBe("");
  });

  it("reads a .env file chosen from disk, and reports the server's refusal on its row", async () => {
    const { user, creates } = setup();
    const file = new File(["# app\nexport NEW_ONE='a b'\ntaken=x\n"], ".env", {
      type: "text/plain",
    });
    await user.upload(screen.getByLabelText("Import file"), file);
    await waitFor(() =>
      expect(
        (
          screen.getByRole("textbox", {
            name: "Or paste the file's content",
          }) as HTMLTextAreaElement
        ).value,
      ).toContain("NEW_ONE"),
    );
    await user.click(screen.getByRole("button", { name: "Preview" }));
    await user.click(await screen.findByRole("button", { name: "Import 2 secrets" }));
    await screen.findByRole("heading", { name: "Result" });
    expect(creates.map((c) => c.name)).toEqual(["NEW_ONE", "taken"]);
    const taken = screen.getAllByRole("row").find((r) => r.textContent?.startsWith("taken"));
    expect(cells(taken as HTMLElement)).toEqual([
      "Failed",
      'A secret named "taken" already exists in /app.',
    ]);
  });

  it("leaves out a new row the person chooses to skip", async () => {
    const { user, creates } = setup();
    await user.click(screen.getByRole("textbox", { name: "Or paste the file's content" }));
    await user.paste("KEEP=1\nDROP=2\n");
    await user.click(screen.getByRole("button", { name: "Preview" }));
    await user.selectOptions(
      await screen.findByRole("combobox", { name: "Action for DROP" }),
      "skip",
    );
    await user.click(screen.getByRole("button", { name: "Import 1 secret" }));
    await screen.findByRole("heading", { name: "Result" });
    expect(creates.map((c) => c.name)).toEqual(["KEEP"]);
    const drop = screen.getAllByRole("row").find((r) => r.textContent?.startsWith("DROP"));
    expect(cells(drop as HTMLElement)).toEqual(["Skipped", "Skipped, as chosen."]);
  });

  it("says why a file does not parse, and checks the folder's path as you type", async () => {
    const { user, lookups } = setup();
    const path = screen.getByRole("textbox", { name: "Path" });
    await user.clear(path);
    await user.type(path, "app");
    expect(descriptionOf(path)).toContain('Path must start with "/" (got "app").');
    await user.clear(path);
    await user.type(path, "/app");
    const box = screen.getByRole("textbox", { name: "Or paste the file's content" });
    await user.type(box, "A=1{Enter}oops");
    await user.click(screen.getByRole("button", { name: "Preview" }));
    expect(descriptionOf(box)).toBe("This .env file does not parse. Line 2: expected KEY=value.");
    expect(lookups).toHaveLength(0);
  });
});
