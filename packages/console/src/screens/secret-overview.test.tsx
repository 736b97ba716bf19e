import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  GetSecretResponseSchema,
  Role,
  type Secret,
  SecretSchema,
  SecretType,
  type UnprotectSecretRequest,
  UnprotectSecretResponseSchema,
} from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { fireEvent, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import {
  cleanConsoleBetweenTests,
  consoleServer,
  openConsole,
  PROJECT,
  settle,
} from "../testing/console.tsx";

const SECRET = "5b1c0c7e-0000-4000-8000-000000000002";

function server(initial: Secret, unprotected: UnprotectSecretRequest[]) {
  let secret = initial;
  return consoleServer(Role.FULL_ACCESS, {
    getSecret: () => create(GetSecretResponseSchema, { secret }),
    deleteSecret: () => {
      throw new ConnectError(
        "secret is protected: unprotect it first to delete it",
        Code.FailedPrecondition,
      );
    },
    unprotectSecret: (req) => {
      unprotected.push(req);
      secret = create(SecretSchema, { ...secret, protected: false, etag: "etag-2" });
      return create(UnprotectSecretResponseSchema, { secret });
    },
  });
}

async function open(secret: Secret) {
  const unprotected: UnprotectSecretRequest[] = [];
  await openConsole(`/p/${PROJECT}/fr-par/secrets/${SECRET}/overview`, server(secret, unprotected));
  // The secret's page and its tab are chunks loaded on demand.
  await screen.findByText("cannot be moved", {}, { timeout: 5000 });
  await settle();
  return unprotected;
}

const base = {
  id: SECRET,
  projectId: PROJECT,
  region: "fr-par",
  name: "db",
  path: "/prod",
  type: SecretType.DATABASE_CREDENTIALS,
  protected: true,
  versionCount: 2,
  etag: "etag-1",
};

cleanConsoleBetweenTests();

describe("the Overview tab", () => {
  it("shows the region as fixed, and the server's refusal to delete a protected secret", async () => {
    await open(create(SecretSchema, base));
    expect(screen.getByText("cannot be moved")).toBeTruthy();
    expect(screen.getByText("/prod/db")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Delete secret" }));
    fireEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete" }));
    await settle();
    expect(screen.getByRole("alert").textContent).toMatch(/^Secret is protected: unprotect/);
  });

  it("turns protection off with the secret's etag", async () => {
    const unprotected = await open(create(SecretSchema, base));
    const toggle = screen.getByRole("switch", { name: "Secret protection" }) as HTMLInputElement;
    expect(toggle.checked).toBe(true);
    fireEvent.click(toggle);
    await settle();
    expect(unprotected).toMatchObject([{ secretId: SECRET, etag: "etag-1" }]);
    expect(
      (screen.getByRole("switch", { name: "Secret protection" }) as HTMLInputElement).checked,
    ).toBe(false);
  });

  it("explains an ephemeral policy as set at creation", async () => {
    await open(
      create(SecretSchema, {
        ...base,
        protected: false,
        ephemeralPolicy: {
          timeToLive: create(DurationSchema, { seconds: 3600n }),
          expiresOnceAccessed: true,
        },
      }),
    );
    expect(screen.getByText("1 hour after a version is created or enabled")).toBeTruthy();
    expect(screen.getByText("On: each version can be read only once")).toBeTruthy();
    expect(screen.getByText(/set when the secret was created and cannot be removed/)).toBeTruthy();
  });
});
