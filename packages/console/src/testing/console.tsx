import { create } from "@bufbuild/protobuf";
import { AdminService, GetCallerResponseSchema, type Role, SecretService } from "@coffer/api";
import { createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { act, cleanup, render } from "@testing-library/react";
import { afterEach, beforeEach } from "vitest";
import { bearer } from "../api/transport.ts";
import { App } from "../app.tsx";
import { readToken } from "../session/session.ts";

/** The project the console's screen tests work in ("payments"). */
export const PROJECT = "7d8f7a4e-0000-4000-8000-000000000001";

/**
 * An in-memory server for the whole console: a caller (token "t") with
 * `role` on PROJECT, and the SecretService handlers a test gives. Calls
 * carry the signed-in token, as the console's own transport does.
 */
export function consoleServer(role: Role, secrets: Partial<ServiceImpl<typeof SecretService>>) {
  return createRouterTransport(
    ({ service }) => {
      service(AdminService, {
        getCaller: () =>
          create(GetCallerResponseSchema, {
            token: { id: "t", name: "t", grants: [{ projectId: PROJECT, role }] },
            projects: [{ id: PROJECT, name: "payments" }],
          }),
      });
      service(SecretService, secrets);
    },
    { transport: { interceptors: [bearer(readToken)] } },
  );
}

/** Opens the console at `url`, signed in, over `server`, and lets its first reads land. */
export async function openConsole(url: string, server: ReturnType<typeof consoleServer>) {
  sessionStorage.setItem("coffer.session", "coffer_t");
  window.history.replaceState(null, "", url);
  render(<App transport={server} />);
  await settle();
}

/** Lets pending calls and renders finish. */
export async function settle() {
  for (let i = 0; i < 5; i++) await act(() => new Promise((r) => setTimeout(r, 10)));
}

/** Each test starts signed out, and leaves nothing on the page or in storage. */
export function cleanConsoleBetweenTests() {
  beforeEach(() => sessionStorage.clear());
  afterEach(() => {
    cleanup();
    sessionStorage.clear();
  });
}
