import { create } from "@bufbuild/protobuf";
import {
  AdminService,
  GetCallerResponseSchema,
  ListSecretsOrderBy,
  type ListSecretsRequest,
  ListSecretsResponseSchema,
  ListTagsResponseSchema,
  Role,
  SecretService,
  SecretType,
} from "@coffer/api";
import { createRouterTransport } from "@connectrpc/connect";
import { act, cleanup, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bearer } from "../api/transport.ts";
import { App } from "../app.tsx";
import { readToken } from "../session/session.ts";

const PROJECT = "7d8f7a4e-0000-4000-8000-000000000001";

function server(seen: ListSecretsRequest[], role: Role) {
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
        listSecrets: (req) => {
          seen.push(req);
          return create(ListSecretsResponseSchema, { secrets: [], totalCount: 0n });
        },
        listTags: () => create(ListTagsResponseSchema, { tags: ["prod"] }),
      });
    },
    { transport: { interceptors: [bearer(readToken)] } },
  );
}

async function open(url: string, role = Role.FULL_ACCESS) {
  const seen: ListSecretsRequest[] = [];
  sessionStorage.setItem("coffer.session", "coffer_t");
  window.history.replaceState(null, "", url);
  render(<App transport={server(seen, role)} />);
  for (let i = 0; i < 5; i++) await act(() => new Promise((r) => setTimeout(r, 10)));
  return seen;
}

beforeEach(() => sessionStorage.clear());
afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

describe("the Secrets list", () => {
  it("asks ListSecrets for what the URL's filters, sort and page say", async () => {
    const seen = await open(
      `/p/${PROJECT}/fr-par/secrets?view=list&path=/prod&name=db&tag=prod&type=key_value&protected=yes&ephemeral=no&deleted=true&sort=created_desc&page=3`,
    );
    const req = seen.at(-1);
    expect(req).toMatchObject({
      region: "fr-par",
      projectId: PROJECT,
      pathPrefix: "/prod",
      name: "db",
      tags: ["prod"],
      type: SecretType.KEY_VALUE,
      protected: true,
      ephemeral: false,
      scheduledForDeletion: true,
      orderBy: ListSecretsOrderBy.CREATED_AT_DESC,
      page: 3,
      pageSize: 50,
    });
    // The filters show what is applied.
    expect((screen.getByLabelText("Name (exact)") as HTMLInputElement).value).toBe("db");
    expect((screen.getByLabelText("Type") as HTMLSelectElement).value).toBe("key_value");
    expect((screen.getByLabelText("Scheduled for deletion only") as HTMLInputElement).checked).toBe(
      true,
    );
  });

  it("lists everything by name with no filter, and says what to do when empty", async () => {
    const seen = await open(`/p/${PROJECT}/fr-par/secrets`);
    const req = seen.at(-1);
    expect(req?.pathPrefix).toBeUndefined();
    expect(req?.name).toBeUndefined();
    expect(req?.tags).toEqual([]);
    expect(req?.type).toBe(SecretType.UNSPECIFIED);
    expect(req?.protected).toBeUndefined();
    expect(req?.scheduledForDeletion).toBeUndefined();
    expect(req?.orderBy).toBe(ListSecretsOrderBy.NAME_ASC);
    expect(screen.getByText("No secrets here yet.")).toBeTruthy();
    expect(screen.getByRole("link", { name: "+ Create secret" }).getAttribute("href")).toBe(
      `/p/${PROJECT}/fr-par/secrets/new?path=%2F`,
    );
  });

  it("offers no + Create secret to a read_only token", async () => {
    await open(`/p/${PROJECT}/fr-par/secrets`, Role.READ_ONLY);
    expect(screen.queryByRole("link", { name: "+ Create secret" })).toBeNull();
    expect(screen.getByText("No secrets here yet.")).toBeTruthy();
  });
});
