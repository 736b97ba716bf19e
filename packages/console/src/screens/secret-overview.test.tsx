import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  GetCallerResponseSchema,
  GetSecretResponseSchema,
  Role,
  type Secret,
  SecretSchema,
  SecretService,
  SecretType,
  type UnprotectSecretRequest,
  UnprotectSecretResponseSchema,
} from "@coffer/api";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { act, cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bearer } from "../api/transport.ts";
import { App } from "../app.tsx";
import { readToken } from "../session/session.ts";

const PROJECT = "7d8f7a4e-0000-4000-8000-000000000001";
const SECRET = "5b1c0c7e-0000-4000-8000-000000000002";

function server(initial: Secret, unprotected: UnprotectSecretRequest[]) {
  let secret = initial;
  return createRouterTransport(
    ({ service }) => {
      service(AdminService, {
        getCaller: () =>
          create(GetCallerResponseSchema, {
            token: { id: "t", name: "t", grants: [{ projectId: PROJECT, role: Role.FULL_ACCESS }] },
            projects: [{ id: PROJECT, name: "payments" }],
          }),
      });
      service(SecretService, {
        getSecret: () => create(GetSecretResponseSchema, { secret }),
        deleteSecret: () => {
          throw new ConnectError(
            `secret is protected: unprotect secret ${SECRET} first (UnprotectSecret) to delete it`,
            Code.FailedPrecondition,
          );
        },
        unprotectSecret: (req) => {
          unprotected.push(req);
          secret = create(SecretSchema, { ...secret, protected: false, etag: "etag-2" });
          return create(UnprotectSecretResponseSchema, { secret });
        },
      });
    },
    { transport: { interceptors: [bearer(readToken)] } },
  );
}

async function open(secret: Secret) {
  const unprotected: UnprotectSecretRequest[] = [];
  sessionStorage.setItem("coffer.session", "coffer_t");
  window.history.replaceState(null, "", `/p/${PROJECT}/fr-par/secrets/${SECRET}/overview`);
  render(<App transport={server(secret, unprotected)} />);
  await settle();
  return unprotected;
}

async function settle() {
  for (let i = 0; i < 5; i++) await act(() => new Promise((r) => setTimeout(r, 10)));
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

beforeEach(() => sessionStorage.clear());
afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

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
