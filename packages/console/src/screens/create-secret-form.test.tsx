import { create } from "@bufbuild/protobuf";
import {
  type CreateSecretRequest,
  CreateSecretResponseSchema,
  EphemeralAction,
  ListRegionsResponseSchema,
  type Secret,
  SecretSchema,
  SecretType,
} from "@coffer/api";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { cleanup, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { descriptionOf, isInvalid } from "../testing/dom-helpers.ts";
import { renderWithService } from "../testing/providers.tsx";
import { CreateSecretForm } from "./create-secret-form.tsx";

const PROJECT = "0b6d4f2e-8c1a-4e3b-9f7d-2a5c6e8b1d04";

afterEach(cleanup);

/** Renders the form over a fake server that records CreateSecret requests and answers with `answer`. */
function setup(answer?: (req: CreateSecretRequest) => never) {
  const requests: CreateSecretRequest[] = [];
  const onCreated = vi.fn<(s: Secret) => void>();
  renderWithService(
    <CreateSecretForm
      projectId={PROJECT}
      region="fr-par"
      initialPath="/prod"
      onCreated={onCreated}
    />,
    {
      listRegions: () =>
        create(ListRegionsResponseSchema, {
          regions: ["fr-par", "nl-ams"],
          defaultRegion: "fr-par",
        }),
      createSecret: (req) => {
        requests.push(req);
        if (answer) answer(req);
        return create(CreateSecretResponseSchema, {
          secret: create(SecretSchema, {
            id: "s-1",
            name: req.name,
            path: req.path,
            region: req.region,
          }),
        });
      },
    },
  );
  return { user: userEvent.setup(), requests, onCreated };
}

function invalidArgument(field: string, description: string): ConnectError {
  return new ConnectError(`${field}: ${description}`, Code.InvalidArgument, undefined, [
    { desc: BadRequestSchema, value: { fieldViolations: [{ field, description }] } },
  ]);
}

/** A control's accessible name as a person reads it: its aria-label or its label's text. */
function nameOf(el: Element | null): string {
  if (el === null) return "";
  const aria = el.getAttribute("aria-label");
  if (aria) return aria;
  const labels = (el as HTMLInputElement).labels;
  if (labels && labels.length > 0) return labels[0]?.textContent?.trim() ?? "";
  return el.textContent?.trim() ?? "";
}

describe("Create secret form", () => {
  it("follows the seed's steps, in its order and words", () => {
    setup();
    expect(screen.getAllByRole("heading", { level: 2 }).map((h) => h.textContent)).toEqual([
      "Choose a region",
      "Add your secret",
      "Choose a path",
      "Name and tags",
      "Secret protection",
      "Ephemeral policy",
    ]);
    expect(descriptionOf(screen.getByRole("combobox", { name: "Region" }))).toBe(
      "Secrets cannot be moved from one region to another after creation.",
    );
    screen.getByText("The maximum file size for your secret is 64 KiB.");
    expect(descriptionOf(screen.getByRole("textbox", { name: "Path" }))).toContain(
      "Each path must be prefixed with a slash.",
    );
    for (const name of [
      "Enable secret protection",
      "Enable single access",
      "Enable Time to Live",
    ]) {
      expect(screen.getByRole("switch", { name }).getAttribute("aria-checked")).toBe("false");
    }
    screen.getByText(
      /can only be applied to a secret at creation, and cannot be removed once applied/,
    );
    screen.getByText(
      /will be applied to all the secret’s versions \(even those created subsequently\)/,
    );
    expect(screen.getByRole("button", { name: "Create secret" })).toBeTruthy();
  });

  it("checks the path as you type, quoting the server's rule", async () => {
    const { user } = setup();
    const path = screen.getByRole("textbox", { name: "Path" });
    expect(isInvalid(path)).toBe(false);
    await user.clear(path);
    await user.type(path, "prod");
    expect(isInvalid(path)).toBe(true);
    expect(descriptionOf(path)).toContain('Path must start with "/" (got "prod").');
    await user.clear(path);
    await user.type(path, "/prod/db");
    expect(isInvalid(path)).toBe(false);
  });

  it("creates a key/value secret with tags, protection and an ephemeral policy, then hands it on", async () => {
    const { user, requests, onCreated } = setup();
    await screen.findByRole("option", { name: "nl-ams" });
    await user.selectOptions(screen.getByRole("combobox", { name: "Region" }), "nl-ams");
    await user.click(screen.getByRole("radio", { name: /Key\/value/ }));
    await user.type(screen.getByRole("textbox", { name: "Key 1" }), "API_KEY");
    await user.type(screen.getByRole("textbox", { name: "Value 1" }), "k-123");
    const path = screen.getByRole("textbox", { name: "Path" });
    await user.clear(path);
    await user.type(path, "/prod/payments/");
    await user.type(screen.getByRole("textbox", { name: "Name" }), "stripe");
    await user.type(screen.getByRole("textbox", { name: "Tags (optional)" }), "prod, payments");
    await user.click(screen.getByRole("switch", { name: "Enable secret protection" }));
    await user.click(screen.getByRole("switch", { name: "Enable single access" }));
    await user.click(screen.getByRole("switch", { name: "Enable Time to Live" }));
    const amount = screen.getByRole("spinbutton", { name: "Time to live" });
    await user.clear(amount);
    await user.type(amount, "2");
    await user.selectOptions(screen.getByRole("combobox", { name: "Unit" }), "hours");
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    await waitFor(() => expect(onCreated).toHaveBeenCalledOnce());
    const [req] = requests;
    expect(req).toMatchObject({
      region: "nl-ams",
      projectId: PROJECT,
      name: "stripe",
      path: "/prod/payments",
      type: SecretType.KEY_VALUE,
      tags: ["prod", "payments"],
      protected: true,
      ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
    });
    expect(req?.ephemeralPolicy?.timeToLive?.seconds).toBe(7200n);
    expect(new TextDecoder().decode(req?.firstVersion?.data)).toBe('{"API_KEY":"k-123"}');
    expect(onCreated.mock.calls[0]?.[0].id).toBe("s-1");
  });

  it("sends no ephemeral policy when neither toggle is on, and refuses a TTL over one year", async () => {
    const { user, requests } = setup();
    await user.type(screen.getByRole("textbox", { name: "Secret value" }), "v");
    await user.type(screen.getByRole("textbox", { name: "Name" }), "plain");
    await user.click(screen.getByRole("switch", { name: "Enable Time to Live" }));
    const amount = screen.getByRole("spinbutton", { name: "Time to live" });
    await user.clear(amount);
    await user.type(amount, "366");
    expect(descriptionOf(amount)).toBe(
      "The time to live can be at most one year (365 days, 8,760 hours).",
    );
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    expect(requests).toHaveLength(0);
    expect(document.activeElement).toBe(amount);
    await user.click(screen.getByRole("switch", { name: "Enable Time to Live" }));
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    await waitFor(() => expect(requests).toHaveLength(1));
    expect(requests[0]?.ephemeralPolicy).toBeUndefined();
    expect(requests[0]?.path).toBe("/prod");
  });

  it("refuses to send without a name or a value, focusing the first field to fix", async () => {
    const { user, requests } = setup();
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    expect(requests).toHaveLength(0);
    const value = screen.getByRole("textbox", { name: "Secret value" });
    expect(document.activeElement).toBe(value);
    expect(descriptionOf(value)).toContain("The value is empty");
    expect(descriptionOf(screen.getByRole("textbox", { name: "Name" }))).toContain(
      "Enter a name: 1-255",
    );
  });

  it("imports the value from a file, and asks for one when none was chosen", async () => {
    const { user, requests } = setup();
    await user.type(screen.getByRole("textbox", { name: "Secret value" }), "typed by hand");
    await user.click(screen.getByRole("radio", { name: "Import from a file" }));
    await user.type(screen.getByRole("textbox", { name: "Name" }), "from-file");
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    const file = screen.getByLabelText("Secret file");
    expect(document.activeElement).toBe(file);
    expect(descriptionOf(file)).toContain(
      "Choose a file to import (at most 64 KiB, 65,536 bytes).",
    );
    expect(requests).toHaveLength(0);
    await user.upload(file, new File([new Uint8Array([0, 1, 2, 255])], "blob.bin"));
    await screen.findByText(/blob\.bin: 4 bytes/);
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    await waitFor(() => expect(requests).toHaveLength(1));
    expect([...(requests[0]?.firstVersion?.data ?? [])]).toEqual([0, 1, 2, 255]);
    expect(requests[0]?.type).toBe(SecretType.OPAQUE);
  });

  it("sends nothing when the file chosen is refused, even after a good one was read", async () => {
    const { user, requests } = setup();
    await user.click(screen.getByRole("radio", { name: /Basic credentials/ }));
    await user.click(screen.getByRole("radio", { name: "Import from a file" }));
    await user.type(screen.getByRole("textbox", { name: "Name" }), "creds");
    const file = screen.getByLabelText("Secret file");
    await user.upload(file, new File(['{"username":"a","password":"b"}'], "ok.json"));
    await screen.findByText(/Read from ok\.json/);
    await user.upload(file, new File([new Uint8Array(65_537)], "big.json"));
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    expect(descriptionOf(file)).toContain(
      "This file is 65,537 bytes; the maximum is 64 KiB (65,536 bytes).",
    );
    expect(document.activeElement).toBe(file);
    expect(requests).toHaveLength(0);
  });

  it("shows the server's refusal next to the field it names", async () => {
    const { user } = setup(() => {
      throw invalidArgument(
        "first_version.data.port",
        "must be a string of digits from 0 to 65535",
      );
    });
    await user.click(screen.getByRole("radio", { name: /Database credentials/ }));
    await user.type(screen.getByRole("textbox", { name: "Host" }), "db");
    await user.type(screen.getByRole("textbox", { name: "Name" }), "db");
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    const port = screen.getByRole("textbox", { name: "Port" });
    await waitFor(() => expect(isInvalid(port)).toBe(true));
    expect(descriptionOf(port)).toContain("Port must be a string of digits from 0 to 65535.");
    expect(document.activeElement).toBe(port);
  });

  it("puts ALREADY_EXISTS on the name, and a refusal about no field above the button", async () => {
    let code = Code.AlreadyExists;
    const { user } = setup(() => {
      throw new ConnectError(
        code === Code.AlreadyExists
          ? 'a secret named "dup" already exists in /prod'
          : "token lacks secret_write",
        code,
      );
    });
    await user.type(screen.getByRole("textbox", { name: "Secret value" }), "v");
    await user.type(screen.getByRole("textbox", { name: "Name" }), "dup");
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    const name = screen.getByRole("textbox", { name: "Name" });
    await waitFor(() =>
      expect(descriptionOf(name)).toContain('A secret named "dup" already exists in /prod.'),
    );
    code = Code.PermissionDenied;
    await user.click(screen.getByRole("button", { name: "Create secret" }));
    await waitFor(() =>
      // The scaffold's describeError words it; the server's reason must be in it.
      expect(screen.getByRole("alert").textContent).toMatch(/token lacks secret_write/i),
    );
  });

  it("works with the keyboard alone: tab order follows the steps, Space toggles a switch", async () => {
    const { user, requests } = setup();
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) {
      await user.tab();
      seen.push(nameOf(document.activeElement));
    }
    expect(seen).toEqual([
      "Region",
      "Add manually",
      "Opaque",
      "Secret value",
      "Path",
      "Name",
      "Tags (optional)",
      "Description (optional)",
      "Enable secret protection",
      "Enable single access",
      "Enable Time to Live",
      "Create secret",
    ]);
    await user.click(screen.getByRole("textbox", { name: "Secret value" }));
    await user.keyboard("v");
    await user.tab();
    await user.tab();
    await user.keyboard("by-keys");
    await user.tab();
    await user.tab();
    await user.tab();
    expect(nameOf(document.activeElement)).toBe("Enable secret protection");
    await user.keyboard(" ");
    expect(document.activeElement?.getAttribute("aria-checked")).toBe("true");
    await user.tab();
    await user.keyboard("{Enter}");
    expect(document.activeElement?.getAttribute("aria-checked")).toBe("true");
    await user.tab();
    expect(nameOf(document.activeElement)).toBe("Enable Time to Live");
    await user.tab();
    expect(nameOf(document.activeElement)).toBe("When a version expires");
    await user.tab();
    expect(nameOf(document.activeElement)).toBe("Create secret");
    await user.keyboard("{Enter}");
    await waitFor(() => expect(requests).toHaveLength(1));
    expect(requests[0]).toMatchObject({ name: "by-keys", protected: true });
    expect(requests[0]?.ephemeralPolicy?.expiresOnceAccessed).toBe(true);
  });
});
