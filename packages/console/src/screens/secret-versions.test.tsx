import { create } from "@bufbuild/protobuf";
import {
  AdminService,
  type DisableSecretVersionRequest,
  DisableSecretVersionResponseSchema,
  GetCallerResponseSchema,
  GetSecretResponseSchema,
  ListSecretVersionsResponseSchema,
  Role,
  SecretService,
  SecretType,
  VersionStatus,
} from "@coffer/api";
import { createRouterTransport } from "@connectrpc/connect";
import { act, cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bearer } from "../api/transport.ts";
import { App } from "../app.tsx";
import { readToken } from "../session/session.ts";

const PROJECT = "7d8f7a4e-0000-4000-8000-000000000001";
const SECRET = "5b1c0c7e-0000-4000-8000-000000000002";

function server(role: Role, disabled: DisableSecretVersionRequest[], accessed: string[]) {
  return createRouterTransport(
    ({ service }) => {
      service(AdminService, {
        getCaller: () =>
          create(GetCallerResponseSchema, {
            token: { id: "t", name: "t", grants: [{ projectId: PROJECT, role }] },
            projects: [{ id: PROJECT, name: "payments" }],
          }),
      });
      service(SecretService, {
        getSecret: () =>
          create(GetSecretResponseSchema, {
            secret: {
              id: SECRET,
              projectId: PROJECT,
              region: "fr-par",
              name: "api",
              path: "/",
              type: SecretType.OPAQUE,
              versionCount: 3,
              etag: "etag-1",
            },
          }),
        listSecretVersions: () =>
          create(ListSecretVersionsResponseSchema, {
            versions: [
              { secretId: SECRET, revision: 3, status: VersionStatus.DISABLED, latest: true },
              { secretId: SECRET, revision: 2, status: VersionStatus.ENABLED },
              { secretId: SECRET, revision: 1, status: VersionStatus.ENABLED },
            ],
            totalCount: 3n,
          }),
        disableSecretVersion: (req) => {
          disabled.push(req);
          return create(DisableSecretVersionResponseSchema, {});
        },
        accessSecretVersion: (req) => {
          accessed.push(req.revision);
          throw new Error("not in this test");
        },
      });
    },
    { transport: { interceptors: [bearer(readToken)] } },
  );
}

async function open(role: Role) {
  const disabled: DisableSecretVersionRequest[] = [];
  const accessed: string[] = [];
  sessionStorage.setItem("coffer.session", "coffer_t");
  window.history.replaceState(null, "", `/p/${PROJECT}/fr-par/secrets/${SECRET}/versions`);
  render(<App transport={server(role, disabled, accessed)} />);
  await settle();
  return { disabled, accessed };
}

async function settle() {
  for (let i = 0; i < 5; i++) await act(() => new Promise((r) => setTimeout(r, 10)));
}

const row = (revision: number) => screen.getByRole("row", { name: `Version ${revision}` });

beforeEach(() => sessionStorage.clear());
afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

describe("the Versions tab", () => {
  it("marks the latest and the latest enabled, and sends the secret's etag with an action", async () => {
    const { disabled } = await open(Role.FULL_ACCESS);
    expect(within(row(3)).getByText("Latest")).toBeTruthy();
    expect(within(row(3)).queryByText("Latest enabled")).toBeNull();
    expect(within(row(2)).getByText("Latest enabled")).toBeTruthy();
    expect(within(row(1)).queryByText(/Latest/)).toBeNull();
    expect(within(row(3)).getByRole("button", { name: "Enable" })).toBeTruthy();
    expect(within(row(3)).queryByRole("button", { name: "Reveal" })).toBeNull();
    expect(screen.getByRole("button", { name: "+ Create version" })).toBeTruthy();

    fireEvent.click(within(row(2)).getByRole("button", { name: "Disable" }));
    await settle();
    expect(disabled).toHaveLength(1);
    expect(disabled[0]).toMatchObject({
      region: "fr-par",
      secretId: SECRET,
      revision: "2",
      etag: "etag-1",
    });
  });

  it("shows a read_only token no Reveal, no Copy and no actions, and reads no payload", async () => {
    const { accessed } = await open(Role.READ_ONLY);
    expect(row(2)).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Reveal" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Copy" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Disable" })).toBeNull();
    expect(screen.queryByRole("button", { name: "+ Create version" })).toBeNull();
    expect(accessed).toEqual([]);
  });

  it("shows a secret_write token the actions but no Reveal", async () => {
    await open(Role.SECRET_WRITE);
    expect(within(row(2)).getByRole("button", { name: "Disable" })).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Reveal" })).toBeNull();
  });
});
