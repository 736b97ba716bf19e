import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readToken, SESSION_KEY, writeLastPlace, writeToken } from "./session.ts";
import { SessionProvider, useSession } from "./session-context.tsx";

beforeEach(() => {
  sessionStorage.clear();
  localStorage.clear();
});
afterEach(() => {
  cleanup();
  sessionStorage.clear();
  localStorage.clear();
});

function Probe() {
  const s = useSession();
  return (
    <div>
      <span>{s.signedIn ? "state: in" : "state: out"}</span>
      <button type="button" onClick={() => s.signIn("coffer_secret_value")}>
        in
      </button>
      <button type="button" onClick={s.signOut}>
        out
      </button>
    </div>
  );
}

describe("the session", () => {
  it("keeps the token in sessionStorage only, never in localStorage or a cookie", () => {
    const client = new QueryClient();
    render(
      <QueryClientProvider client={client}>
        <SessionProvider>
          <Probe />
        </SessionProvider>
      </QueryClientProvider>,
    );
    expect(screen.getByText("state: out")).toBeTruthy();
    act(() => screen.getByRole("button", { name: "in" }).click());
    expect(screen.getByText("state: in")).toBeTruthy();
    expect(sessionStorage.getItem(SESSION_KEY)).toBe("coffer_secret_value");
    expect(readToken()).toBe("coffer_secret_value");
    expect(localStorage.length).toBe(0);
    expect(document.cookie).not.toContain("coffer_secret_value");
    expect(window.location.href).not.toContain("coffer_secret_value");
  });

  it("signing out forgets the token, every coffer key and the whole query cache", () => {
    const client = new QueryClient();
    writeToken("coffer_secret_value");
    writeLastPlace({ projectId: "p", region: "fr-par" });
    sessionStorage.setItem("tsr-scroll-restoration-v1_3", "{}");
    client.setQueryData(["some", "read"], { secrets: ["meta"] });
    let signedOut = 0;
    render(
      <QueryClientProvider client={client}>
        <SessionProvider onSignOut={() => signedOut++}>
          <Probe />
        </SessionProvider>
      </QueryClientProvider>,
    );
    expect(screen.getByText("state: in")).toBeTruthy();
    act(() => screen.getByRole("button", { name: "out" }).click());
    expect(screen.getByText("state: out")).toBeTruthy();
    expect(sessionStorage.length).toBe(0);
    expect(localStorage.length).toBe(0);
    expect(client.getQueryCache().getAll()).toHaveLength(0);
    expect(signedOut).toBe(1);
  });
});
