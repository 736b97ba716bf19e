import { create } from "@bufbuild/protobuf";
import {
  type CreateSecretVersionRequest,
  CreateSecretVersionResponseSchema,
  type Secret,
  SecretSchema,
  SecretType,
  SecretVersionSchema,
} from "@coffer/api";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { cleanup, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { descriptionOf, isInvalid } from "../testing/dom-helpers.ts";
import { renderWithService } from "../testing/providers.tsx";
import { CreateVersionDialog } from "./create-version-dialog.tsx";

afterEach(cleanup);

function setup(type: SecretType, fail?: () => never) {
  const secret: Secret = create(SecretSchema, {
    id: "s-1",
    name: "db",
    region: "fr-par",
    type,
    path: "/prod",
  });
  const requests: CreateSecretVersionRequest[] = [];
  const onClose = vi.fn();
  const onCreated = vi.fn();
  renderWithService(
    <>
      <button type="button">+ Create version</button>
      <CreateVersionDialog secret={secret} onClose={onClose} onCreated={onCreated} />
    </>,
    {
      createSecretVersion: (req) => {
        requests.push(req);
        if (fail) fail();
        return create(CreateSecretVersionResponseSchema, {
          version: create(SecretVersionSchema, { secretId: "s-1", revision: 2 }),
        });
      },
    },
  );
  return { user: userEvent.setup(), requests, onClose, onCreated };
}

describe("Create version dialog", () => {
  it("is a named modal dialog that takes the focus, keeps Tab inside, and closes on Escape", async () => {
    const { user, onClose } = setup(SecretType.OPAQUE);
    const dialog = screen.getByRole("dialog", { name: "Create version" });
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(descriptionOf(dialog)).toContain(
      "You cannot change the type after you have created the secret.",
    );
    const first = screen.getByRole("radio", { name: "Add manually" });
    expect(document.activeElement).toBe(first);
    await user.tab({ shift: true });
    expect(document.activeElement).toBe(screen.getByRole("button", { name: "Create version" }));
    await user.tab();
    expect(document.activeElement).toBe(first);
    await user.keyboard("{Escape}");
    expect(onClose).toHaveBeenCalledOnce();
  });

  it("creates an enabled version by default, with the value in the secret's type", async () => {
    const { user, requests, onClose, onCreated } = setup(SecretType.BASIC_CREDENTIALS);
    expect(screen.getByRole("switch", { name: "Enable" }).getAttribute("aria-checked")).toBe(
      "true",
    );
    await user.type(screen.getByRole("textbox", { name: "Username" }), "app");
    await user.type(screen.getByLabelText("Password"), "new-pass");
    await user.click(screen.getByRole("switch", { name: "Disable previous" }));
    await user.type(screen.getByRole("textbox", { name: "Description (optional)" }), "rotated");
    await user.click(screen.getByRole("button", { name: "Create version" }));
    await waitFor(() => expect(onClose).toHaveBeenCalledOnce());
    expect(requests[0]).toMatchObject({
      region: "fr-par",
      secretId: "s-1",
      enabled: true,
      disablePrevious: true,
      description: "rotated",
    });
    expect(new TextDecoder().decode(requests[0]?.data)).toBe(
      '{"username":"app","password":"new-pass"}',
    );
    expect(onCreated.mock.calls[0]?.[0].revision).toBe(2);
  });

  it("creates a disabled version when Enable is turned off, and then offers no Disable previous", async () => {
    const { user, requests } = setup(SecretType.OPAQUE);
    await user.type(screen.getByRole("textbox", { name: "Secret value" }), "v2");
    await user.click(screen.getByRole("switch", { name: "Enable" }));
    const previous = screen.getByRole("switch", { name: "Disable previous" }) as HTMLButtonElement;
    expect(previous.disabled).toBe(true);
    await user.click(screen.getByRole("button", { name: "Create version" }));
    await waitFor(() => expect(requests).toHaveLength(1));
    expect(requests[0]).toMatchObject({ enabled: false, disablePrevious: false });
  });

  it("shows the server's refusal next to the field it names, and keeps the dialog open", async () => {
    const { user, onClose } = setup(SecretType.DATABASE_CREDENTIALS, () => {
      throw new ConnectError(
        "data.engine: must be one of postgres, mysql, other",
        Code.InvalidArgument,
        undefined,
        [
          {
            desc: BadRequestSchema,
            value: {
              fieldViolations: [
                { field: "data.engine", description: "must be one of postgres, mysql, other" },
              ],
            },
          },
        ],
      );
    });
    await user.type(screen.getByRole("textbox", { name: "Host" }), "h");
    await user.click(screen.getByRole("button", { name: "Create version" }));
    const engine = screen.getByRole("combobox", { name: "Engine" });
    await waitFor(() => expect(isInvalid(engine)).toBe(true));
    expect(descriptionOf(engine)).toBe("Engine must be one of postgres, mysql, other.");
    expect(onClose).not.toHaveBeenCalled();
  });

  it("reads the version from a file, and asks for one when none was chosen", async () => {
    const { user, requests } = setup(SecretType.KEY_VALUE);
    await user.click(screen.getByRole("radio", { name: "Import from a file" }));
    await user.click(screen.getByRole("button", { name: "Create version" }));
    const file = screen.getByLabelText("Secret file");
    await waitFor(() => expect(document.activeElement).toBe(file));
    expect(descriptionOf(file)).toContain("Choose a file to import");
    expect(requests).toHaveLength(0);
    await user.upload(file, new File(["A=1\nB=two\n"], "app.env"));
    await screen.findByText(/Read from app\.env/);
    await user.click(screen.getByRole("button", { name: "Create version" }));
    await waitFor(() => expect(requests).toHaveLength(1));
    expect(new TextDecoder().decode(requests[0]?.data)).toBe('{"A":"1","B":"two"}');
  });

  it("refuses an empty value without calling the server", async () => {
    const { user, requests } = setup(SecretType.CERTIFICATE);
    await user.click(screen.getByRole("button", { name: "Create version" }));
    const pem = screen.getByRole("textbox", { name: "Certificate (PEM)" });
    await waitFor(() => expect(document.activeElement).toBe(pem));
    expect(descriptionOf(pem)).toContain("Paste one or more PEM blocks");
    expect(requests).toHaveLength(0);
  });
});
