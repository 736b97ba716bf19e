import { create } from "@bufbuild/protobuf";
import {
  AdminService,
  GetCallerResponseSchema,
  ListRegionsResponseSchema,
  Role,
  SecretService,
} from "@coffer/api";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bearer } from "./api/transport.ts";
import { App } from "./app.tsx";
import { readToken } from "./session/session.ts";

const GOOD = "coffer_good_token_value";
const PROJECT = { id: "7d8f7a4e-0000-4000-8000-000000000001", name: "payments" };

/** A server that knows one token, revoked when `revoked` is set. */
function server(state: { revoked: boolean }) {
  const check = (header: Headers) => {
    if (header.get("authorization") !== `Bearer ${GOOD}` || state.revoked) {
      throw new ConnectError("token is revoked", Code.Unauthenticated);
    }
  };
  // The app's own interceptor, as createTransport() installs it.
  return createRouterTransport(
    ({ service }) => {
      service(AdminService, {
        getCaller: (_req, ctx) => {
          check(ctx.requestHeader);
          return create(GetCallerResponseSchema, {
            token: {
              id: "t1",
              name: "reader",
              grants: [{ projectId: PROJECT.id, role: Role.READ_ONLY }],
            },
            projects: [PROJECT],
          });
        },
      });
      service(SecretService, {
        listRegions: (_req, ctx) => {
          check(ctx.requestHeader);
          return create(ListRegionsResponseSchema, {
            regions: ["fr-par"],
            defaultRegion: "fr-par",
          });
        },
      });
    },
    { transport: { interceptors: [bearer(readToken)] } },
  );
}

async function settle() {
  for (let i = 0; i < 5; i++) await act(() => new Promise((r) => setTimeout(r, 10)));
}

beforeEach(() => {
  sessionStorage.clear();
  localStorage.clear();
  window.history.replaceState(null, "", "/");
});
afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

describe("signing in and out", () => {
  it("refuses a wrong token with the server's message and keeps nothing", async () => {
    render(<App transport={server({ revoked: false })} />);
    await settle();
    expect(window.location.pathname).toBe("/sign-in");
    fireEvent.change(screen.getByLabelText("Access token"), { target: { value: "coffer_wrong" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await settle();
    expect(screen.getByRole("alert").textContent).toBe("Token is revoked.");
    expect(sessionStorage.length).toBe(0);
    expect(localStorage.length).toBe(0);
  });

  it("keeps an accepted token in sessionStorage only, and sign-out forgets it", async () => {
    render(<App transport={server({ revoked: false })} />);
    await settle();
    const input = screen.getByLabelText("Access token") as HTMLInputElement;
    expect(input.type).toBe("password");
    fireEvent.change(input, { target: { value: GOOD } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await settle();
    expect(window.location.pathname).toBe("/projects");
    expect(screen.getByRole("link", { name: /payments/ })).toBeTruthy();
    expect(sessionStorage.getItem("coffer.session")).toBe(GOOD);
    expect(localStorage.length).toBe(0);
    expect(document.cookie).toBe("");
    expect(window.location.href).not.toContain(GOOD);

    fireEvent.click(screen.getByRole("button", { name: "Sign out" }));
    await settle();
    expect(window.location.pathname).toBe("/sign-in");
    expect(sessionStorage.length).toBe(0);
    expect(screen.queryByText("payments")).toBeNull();
  });

  it("ends the session when the token is revoked while the console is open", async () => {
    sessionStorage.setItem("coffer.session", GOOD);
    window.history.replaceState(null, "", "/projects");
    render(<App transport={server({ revoked: true })} />);
    await settle();
    expect(window.location.pathname).toBe("/sign-in");
    expect(sessionStorage.length).toBe(0);
    expect(screen.getByText(/Your session ended/)).toBeTruthy();
  });
});
