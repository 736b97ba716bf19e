import { create } from "@bufbuild/protobuf";
import {
  type DisableSecretVersionRequest,
  DisableSecretVersionResponseSchema,
  GetSecretResponseSchema,
  ListSecretVersionsResponseSchema,
  Role,
  SecretType,
  VersionStatus,
} from "@coffer/api";
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

function server(role: Role, disabled: DisableSecretVersionRequest[], accessed: string[]) {
  return consoleServer(role, {
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
}

async function open(role: Role) {
  const disabled: DisableSecretVersionRequest[] = [];
  const accessed: string[] = [];
  await openConsole(
    `/p/${PROJECT}/fr-par/secrets/${SECRET}/versions`,
    server(role, disabled, accessed),
  );
  // The secret's page and its tab are chunks loaded on demand.
  await screen.findByRole("row", { name: "Version 1" }, { timeout: 5000 });
  await settle();
  return { disabled, accessed };
}

const row = (revision: number) => screen.getByRole("row", { name: `Version ${revision}` });

cleanConsoleBetweenTests();

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
