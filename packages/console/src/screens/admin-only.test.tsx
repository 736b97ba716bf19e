import { create } from "@bufbuild/protobuf";
import { AdminService, GetCallerResponseSchema, Role } from "@coffer/api";
import { createRouterTransport } from "@connectrpc/connect";
import { QueryClient } from "@tanstack/react-query";
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { TestProviders } from "../testing/providers.tsx";
import { AdminOnly } from "./admin-only.tsx";

const PROJECT = "7d8f7a4e-0000-4000-8000-000000000001";

function renderAs(role: Role) {
  const transport = createRouterTransport(({ service }) => {
    service(AdminService, {
      getCaller: () =>
        create(GetCallerResponseSchema, {
          token: { id: "t", name: "ci", grants: [{ projectId: PROJECT, role }] },
        }),
    });
  });
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <TestProviders transport={transport} queryClient={queryClient}>
      <AdminOnly projectId={PROJECT} task="manage its tokens">
        {(caller) => <p>Tokens of {caller.token?.name}</p>}
      </AdminOnly>
    </TestProviders>,
  );
}

afterEach(cleanup);

describe("a screen for admins only", () => {
  it("shows an admin the screen", async () => {
    renderAs(Role.ADMIN);
    expect(await screen.findByText("Tokens of ci")).toBeTruthy();
    expect(screen.queryByText(/Only the project's admins/)).toBeNull();
  });

  it("tells anyone else who can do it, and shows nothing of the screen", async () => {
    renderAs(Role.FULL_ACCESS);
    expect(
      await screen.findByText(
        "Only the project's admins manage its tokens. Ask one for a token with the admin role.",
      ),
    ).toBeTruthy();
    expect(screen.queryByText(/Tokens of/)).toBeNull();
  });
});
