import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  type AuditEventSchema,
  AuthService,
  IdentityBindingSchema,
  type ListAuditEventsRequest,
  ProjectSchema,
  SecretSchema,
  SecretService,
  type Token,
  TokenSchema,
} from "@coffer/api";
import { createRouterTransport } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import {
  createMemoryHistory,
  createRootRoute,
  createRouter,
  RouterProvider,
} from "@tanstack/react-router";
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { useState } from "react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditPanel, METHODS } from "./audit-panel.tsx";
import { type AuditSearch, validateAuditSearch } from "./audit-search.ts";

const P = "0f8fad5b-d9cb-469f-a165-70867728950e";
const SECRET = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const TOKEN = "11111111-1111-4111-8111-111111111111";
const ACCESS = "coffer.secretmanager.v1.SecretService/AccessSecretVersion";
const EXCHANGE = "coffer.auth.v1.AuthService/ExchangeToken";
const BINDING = "44444444-4444-4444-8444-444444444444";
const ISSUED = "55555555-5555-4555-8555-555555555555";
const ISSUER = "https://token.actions.githubusercontent.com";
const SUBJECT = "repo:acme/payments:ref:refs/heads/main";

type EventInit = MessageInitShape<typeof AuditEventSchema>;
const event = (over: EventInit): EventInit => ({
  id: crypto.randomUUID(),
  time: timestampFromDate(new Date("2026-12-05T09:00:00Z")),
  projectId: P,
  method: ACCESS,
  outcome: "OK",
  requestId: "req-1",
  peer: "10.0.0.7:51234",
  region: "fr-par",
  count: 1,
  ...over,
});

let requests: ListAuditEventsRequest[];
let events: EventInit[];

function transport() {
  return createRouterTransport(({ service }) => {
    service(AdminService, {
      listAuditEvents(req) {
        requests.push(req);
        const shown = events.filter(
          (e) =>
            (req.projectId === "" || e.projectId === req.projectId) &&
            (req.secretId === "" || e.secretId === req.secretId) &&
            (req.tokenId === "" || e.tokenId === req.tokenId) &&
            (req.method === "" || e.method === req.method) &&
            (req.outcome === "" || e.outcome === req.outcome),
        );
        return { events: shown, totalCount: BigInt(shown.length) };
      },
      listTokens: () => ({
        tokens: [
          create(TokenSchema, { id: TOKEN, name: "billing agent", prefix: "coffer_ab12" }),
          create(TokenSchema, {
            id: ISSUED,
            name: `deploy: ${SUBJECT}`,
            prefix: "coffer_ex01",
            bindingId: BINDING,
            issuer: ISSUER,
            subject: SUBJECT,
          }),
        ],
      }),
      listIdentityBindings: () => {
        bindingLists += 1;
        return { bindings: [create(IdentityBindingSchema, { id: BINDING, name: "deploy" })] };
      },
    });
    service(SecretService, {
      getSecret: (req) => ({
        secret: create(SecretSchema, { id: req.secretId, projectId: P, path: "/prod", name: "db" }),
      }),
    });
  });
}

/** The search the harness started with, and holds now (the screen keeps it in the URL). */
let initialSearch: AuditSearch = {};
let currentSearch: AuditSearch = {};

/** The signed-in token, when a test gives one. */
let callerToken: Token | undefined;
let globalAdmin = false;
/** How many times the panel listed identity bindings. */
let bindingLists = 0;

function Harness() {
  const [search, setSearch] = useState<AuditSearch>(initialSearch);
  currentSearch = search;
  return (
    <AuditPanel
      projectId={P}
      region="fr-par"
      callerToken={callerToken}
      globalAdmin={globalAdmin}
      projects={[create(ProjectSchema, { id: P, name: "billing" })]}
      search={search}
      onSearch={(changes) => setSearch((prev) => ({ ...prev, page: undefined, ...changes }))}
    />
  );
}

/** The panel in a router (its links need one). */
function renderPanel(initial: AuditSearch = {}) {
  initialSearch = initial;
  currentSearch = initial;
  const router = createRouter({
    routeTree: createRootRoute({ component: Harness }),
    history: createMemoryHistory({ initialEntries: ["/"] }),
  });
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <TransportProvider transport={transport()}>
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </TransportProvider>,
  );
  return { search: () => currentSearch };
}

beforeEach(() => {
  requests = [];
  callerToken = undefined;
  globalAdmin = false;
  bindingLists = 0;
  events = [
    event({
      tokenId: TOKEN,
      secretId: SECRET,
      secretPath: "/prod",
      secretName: "db",
      revision: 3,
      requestId: "req-access",
    }),
    event({
      method: "coffer.secretmanager.v1.SecretService/GetSecret",
      outcome: "PERMISSION_DENIED",
      tokenId: "99999999-9999-4999-8999-999999999999",
      requestId: "req-denied",
    }),
    event({
      method: "coffer.secretmanager.v1.SecretService/ListSecrets",
      outcome: "UNAUTHENTICATED",
      tokenPrefix: "coffer_zz99",
      count: 12,
      requestId: "req-flood",
    }),
  ];
});
afterEach(cleanup);

const rowOf = async (requestId: string) =>
  (await screen.findByText(requestId)).closest("tr") as HTMLElement;

describe("the Audit screen", () => {
  it("lists the project's events with who, what, on which secret and how it ended", async () => {
    renderPanel();
    const access = await rowOf("req-access");
    expect(access.textContent).toContain("AccessSecretVersion");
    expect(within(access).getByText("OK").className).toContain("badge-ok");
    expect(access.textContent).toContain("billing agent (coffer_ab12…)");
    expect(access.textContent).toContain("/prod/db");
    expect(access.textContent).toContain("3");
    expect(access.textContent).toContain("10.0.0.7:51234");

    const denied = await rowOf("req-denied");
    expect(within(denied).getByText("Permission denied").className).toContain("badge-danger");
    expect(denied.textContent).toContain("99999999…");

    const flood = await rowOf("req-flood");
    expect(flood.textContent).toContain("×12");
    expect(flood.textContent).toContain("no valid token (coffer_zz99…)");

    expect(requests[0]).toMatchObject({
      region: "fr-par",
      projectId: P,
      secretId: "",
      tokenId: "",
      method: "",
      outcome: "",
      page: 1,
    });
    expect(requests[0]?.startTime).toBeUndefined();
  });

  it("filters by token, method, outcome and time, and clears the filters", async () => {
    const view = renderPanel();
    await rowOf("req-access");
    fireEvent.change(screen.getByLabelText("Token"), { target: { value: TOKEN } });
    fireEvent.change(screen.getByLabelText("Method"), { target: { value: ACCESS } });
    fireEvent.change(screen.getByLabelText("Outcome"), { target: { value: "OK" } });
    fireEvent.change(screen.getByLabelText("From"), { target: { value: "2026-12-05T08:00" } });
    fireEvent.change(screen.getByLabelText("To"), { target: { value: "2026-12-05T10:30" } });
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Apply times" }));
    });
    await waitFor(() => expect(requests.at(-1)?.endTime).toBeDefined());
    const last = requests.at(-1) as ListAuditEventsRequest;
    expect(last).toMatchObject({ tokenId: TOKEN, method: ACCESS, outcome: "OK" });
    expect(timestampDate(last.startTime ?? timestampFromDate(new Date(0)))).toEqual(
      new Date("2026-12-05T08:00"),
    );
    expect(timestampDate(last.endTime ?? timestampFromDate(new Date(0)))).toEqual(
      new Date("2026-12-05T10:30"),
    );
    expect(view.search()).toEqual({
      token: TOKEN,
      method: ACCESS,
      outcome: "OK",
      from: "2026-12-05T08:00",
      to: "2026-12-05T10:30",
    });
    await rowOf("req-access");
    expect(screen.queryByText("req-denied")).toBeNull();

    fireEvent.click(screen.getByRole("button", { name: "Clear filters" }));
    await rowOf("req-denied");
    expect(requests.at(-1)).toMatchObject({ tokenId: "", method: "", outcome: "" });
    expect(requests.at(-1)?.startTime).toBeUndefined();
  });

  it("refuses a time range that ends before it starts", async () => {
    renderPanel();
    await rowOf("req-access");
    fireEvent.change(screen.getByLabelText("From"), { target: { value: "2026-12-05T10:00" } });
    fireEvent.change(screen.getByLabelText("To"), { target: { value: "2026-12-05T09:00" } });
    expect(screen.getByText("Must be after From.")).toBeTruthy();
    expect(
      (screen.getByRole("button", { name: "Apply times" }) as HTMLButtonElement).disabled,
    ).toBe(true);
  });

  it("shows one secret's events, named, from a click on the secret or from the URL", async () => {
    const view = renderPanel();
    const access = await rowOf("req-access");
    fireEvent.click(within(access).getByRole("button", { name: /\/prod\/db/ }));
    await waitFor(() => expect(requests.at(-1)?.secretId).toBe(SECRET));
    expect(view.search()).toEqual({ secret: SECRET });
    const scope = await screen.findByText(/Events of the secret/);
    await waitFor(() => expect(scope.textContent).toContain("/prod/db"));
    expect(screen.getByRole("link", { name: "Open the secret" }).getAttribute("href")).toBe(
      `/p/${P}/fr-par/secrets/${SECRET}/overview`,
    );
    expect(screen.queryByText("req-denied")).toBeNull();

    fireEvent.click(screen.getByRole("button", { name: "Show the whole project's events" }));
    await rowOf("req-denied");
    expect(requests.at(-1)?.secretId).toBe("");
  });

  it("names the signed-in token even when none of its grants is on the project", async () => {
    callerToken = create(TokenSchema, {
      id: "99999999-9999-4999-8999-999999999999",
      name: "bootstrap admin",
      prefix: "coffer_gl0b",
    });
    renderPanel();
    const denied = await rowOf("req-denied");
    expect(denied.textContent).toContain("bootstrap admin (coffer_gl0b…)");
  });

  it("shows who signed in with a JWT, through which binding, the token issued, and a refusal's reason", async () => {
    // A token change names a token too, but keeps to the usual columns.
    events.push(
      event({
        method: "coffer.admin.v1.AdminService/CreateToken",
        tokenId: TOKEN,
        targetTokenId: ISSUED,
        requestId: "req-create",
      }),
    );
    const base = events.length;
    renderPanel();
    await rowOf("req-create");
    // No event here has a detail: no Detail column, no binding asked for.
    expect(screen.queryByRole("columnheader", { name: "Detail" })).toBeNull();
    expect(bindingLists).toBe(0);
    cleanup();

    events = [
      event({
        method: EXCHANGE,
        targetTokenId: ISSUED,
        issuer: ISSUER,
        subject: SUBJECT,
        bindingId: BINDING,
        requestId: "req-exchange",
      }),
      event({
        method: EXCHANGE,
        outcome: "UNAUTHENTICATED",
        issuer: ISSUER,
        subject: "repo:acme/payments:ref:refs/heads/evil",
        reason: "no binding matches",
        requestId: "req-refused",
      }),
      ...events.slice(0, base),
    ];
    const view = renderPanel();
    const exchange = await rowOf("req-exchange");
    expect(screen.getByRole("columnheader", { name: "Detail" })).toBeTruthy();
    expect(exchange.textContent).toContain("ExchangeToken");
    expect(exchange.textContent).toContain("a JWT");
    await waitFor(() => expect(exchange.textContent).toContain("Bindingdeploy"));
    expect(exchange.textContent).toContain(`Subject${SUBJECT}`);
    expect(exchange.textContent).toContain(`Issuer${ISSUER}`);
    expect(exchange.textContent).toContain("Issuedcoffer_ex01…");
    expect(exchange.textContent).not.toContain("Reason");

    const refused = await rowOf("req-refused");
    expect(within(refused).getByText("Unauthenticated").className).toContain("badge-danger");
    expect(refused.textContent).toContain("Reasonno binding matches");
    expect(refused.textContent).toContain("Subjectrepo:acme/payments:ref:refs/heads/evil");
    expect(refused.textContent).not.toContain("Binding");
    expect(refused.textContent).not.toContain("Issued");

    // Other events keep an empty Detail cell.
    expect((await rowOf("req-access")).textContent).toContain("—");

    // The issued token is a filter: the calls made with it.
    fireEvent.click(within(exchange).getByRole("button", { name: /^coffer_ex01…/ }));
    await waitFor(() => expect(view.search()).toEqual({ token: ISSUED }));
  });

  it("filters by ExchangeToken, AuthService's method", async () => {
    events = [event({ method: EXCHANGE, subject: "web", requestId: "req-exchange" }), ...events];
    const view = renderPanel();
    await rowOf("req-access");
    fireEvent.change(screen.getByLabelText("Method"), { target: { value: EXCHANGE } });
    await waitFor(() => expect(requests.at(-1)?.method).toBe(EXCHANGE));
    expect(view.search()).toEqual({ method: EXCHANGE });
    await rowOf("req-exchange");
    expect(screen.queryByText("req-access")).toBeNull();
    // A page of sign-ins names no secret: no Secret or Revision column, a Detail one.
    expect(screen.getByRole("columnheader", { name: "Detail" })).toBeTruthy();
    expect(screen.queryByRole("columnheader", { name: "Secret" })).toBeNull();
    expect(screen.queryByRole("columnheader", { name: "Revision" })).toBeNull();
  });

  it("lets a global admin list every project's events, refused sign-ins filed under none included", async () => {
    events = [
      event({
        projectId: "",
        method: EXCHANGE,
        outcome: "UNAUTHENTICATED",
        subject: "intruder",
        reason: "issuer not trusted",
        requestId: "req-refused",
      }),
      ...events,
    ];
    globalAdmin = true;
    const view = renderPanel();
    await rowOf("req-access");
    expect(screen.queryByText("req-refused")).toBeNull();
    expect(screen.queryByRole("columnheader", { name: "Project" })).toBeNull();

    fireEvent.change(screen.getByLabelText("Projects"), { target: { value: "all" } });
    const refused = await rowOf("req-refused");
    expect(requests.at(-1)?.projectId).toBe("");
    expect(view.search()).toEqual({ all: true });
    expect(screen.getByText(/Events of every project/)).toBeTruthy();
    expect(screen.getByRole("columnheader", { name: "Project" })).toBeTruthy();
    expect(refused.textContent).toContain("none");
    expect(refused.textContent).toContain("Reasonissuer not trusted");
    expect((await rowOf("req-access")).textContent).toContain("billing");

    fireEvent.click(screen.getByRole("button", { name: "Show this project's events only" }));
    await waitFor(() => expect(screen.queryByText("req-refused")).toBeNull());
    expect(requests.at(-1)?.projectId).toBe(P);
  });

  it("keeps a project admin to its project, whatever the URL says, and says where refusals go", async () => {
    renderPanel({ all: true });
    await rowOf("req-access");
    expect(requests.at(-1)?.projectId).toBe(P);
    expect(screen.queryByLabelText("Projects")).toBeNull();
    expect(screen.queryByText(/Events of every project/)).toBeNull();
    expect(screen.queryByText(/A refused sign-in belongs to no project/)).toBeNull();
    fireEvent.change(screen.getByLabelText("Method"), { target: { value: EXCHANGE } });
    expect(await screen.findByText(/only a global admin sees those/)).toBeTruthy();
  });

  it("says so when nothing matches", async () => {
    events = [];
    renderPanel({ outcome: "INTERNAL" });
    expect(await screen.findByText("No event matches these filters.")).toBeTruthy();
  });
});

describe("the audit search params", () => {
  it("keep what is well-formed and drop the rest", () => {
    expect(
      validateAuditSearch({
        secret: SECRET,
        token: "not-a-uuid",
        method: ACCESS,
        outcome: "PERMISSION_DENIED",
        from: "2026-12-05T08:00",
        to: "yesterday",
        page: "3",
      }),
    ).toEqual({
      secret: SECRET,
      method: ACCESS,
      outcome: "PERMISSION_DENIED",
      from: "2026-12-05T08:00",
      page: 3,
    });
    expect(validateAuditSearch({ method: "x; drop", outcome: "ok", page: 1 })).toEqual({});
  });

  it("offer every method of the three services, ExchangeToken included", () => {
    expect(METHODS.map((m) => m.name)).toContain(ACCESS);
    expect(METHODS.map((m) => m.name)).toContain("coffer.admin.v1.AdminService/CreateToken");
    expect(METHODS).toContainEqual({ name: EXCHANGE, label: "ExchangeToken" });
    expect(METHODS.length).toBe(
      SecretService.methods.length + AdminService.methods.length + AuthService.methods.length,
    );
  });

  it("keep the every-project scope only when it says true", () => {
    expect(validateAuditSearch({ all: true })).toEqual({ all: true });
    expect(validateAuditSearch({ all: "true" })).toEqual({ all: true });
    expect(validateAuditSearch({ all: 1 })).toEqual({});
  });
});
