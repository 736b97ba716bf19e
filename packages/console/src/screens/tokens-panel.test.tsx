import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  type CreateTokenRequest,
  IdentityBindingSchema,
  type ListTokensRequest,
  type Project,
  ProjectSchema,
  Role,
  type Token,
  TokenFormat,
  TokenSchema,
} from "@coffer/api";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { prefixProblem } from "./token-create.tsx";
import { TokensPanel } from "./tokens-panel.tsx";

const P = "0f8fad5b-d9cb-469f-a165-70867728950e";
const Q = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const VALUE = "coffer_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijkl";
const ACCESS_KEY = "SCW0A1B2C3D4E5F6G7H8";
const SECRET_KEY = "9b2e4c1a-7d3f-4e8a-b5c6-0123456789ab";
const BINDING = "44444444-4444-4444-8444-444444444444";
const ISSUER = "https://token.actions.githubusercontent.com";
const projects: Project[] = [
  create(ProjectSchema, { id: P, name: "billing" }),
  create(ProjectSchema, { id: Q, name: "search" }),
];

const token = (over: MessageInitShape<typeof TokenSchema>): Token =>
  create(TokenSchema, {
    id: "11111111-1111-4111-8111-111111111111",
    name: "ci",
    prefix: "coffer_ab12",
    grants: [{ projectId: P, role: Role.READ_ONLY, pathPrefix: "/" }],
    createdAt: timestampFromDate(new Date("2026-12-01T10:00:00Z")),
    ...over,
  });

let tokens: Token[];
let listed: ListTokensRequest[];
let created: CreateTokenRequest[];
let revoked: string[];
/** The next CreateToken's refusal, if any. */
let refusal: ConnectError | undefined;

function transport() {
  return createRouterTransport(({ service }) => {
    service(AdminService, {
      listTokens(req) {
        listed.push(req);
        // As the server: revoked and expired tokens only when asked.
        const now = Date.now();
        const shown = tokens.filter(
          (t) =>
            req.includeInactive ||
            (t.revokedAt === undefined &&
              (t.expiresAt === undefined || timestampDate(t.expiresAt).getTime() > now)),
        );
        return { tokens: shown, totalCount: BigInt(shown.length) };
      },
      listIdentityBindings: () => ({
        bindings: [create(IdentityBindingSchema, { id: BINDING, name: "deploy" })],
      }),
      createToken(req) {
        created.push(req);
        if (refusal !== undefined) throw refusal;
        const scaleway = req.format === TokenFormat.SCALEWAY;
        const t = token({
          id: "22222222-2222-4222-8222-222222222222",
          name: req.name,
          prefix: scaleway ? ACCESS_KEY : VALUE.slice(0, 11),
          accessKey: scaleway ? ACCESS_KEY : "",
          grants: req.grants,
          ...(req.expiresAt && { expiresAt: req.expiresAt }),
        });
        tokens = [t, ...tokens];
        return scaleway
          ? { token: t, value: SECRET_KEY, accessKey: ACCESS_KEY }
          : { token: t, value: VALUE };
      },
      revokeToken(req) {
        revoked.push(req.tokenId);
        const at = timestampFromDate(new Date());
        tokens = tokens.map((t) => (t.id === req.tokenId ? { ...t, revokedAt: at } : t));
        const t = tokens.find((x) => x.id === req.tokenId);
        return { token: t };
      },
    });
  });
}

let queryClient: QueryClient;
function renderPanel(callerTokenId?: string) {
  queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <TransportProvider transport={transport()}>
      <QueryClientProvider client={queryClient}>
        <TokensPanel
          projectId={P}
          projects={projects}
          globalAdmin={false}
          callerTokenId={callerTokenId}
        />
      </QueryClientProvider>
    </TransportProvider>,
  );
}

const change = (label: string | RegExp, value: string) =>
  fireEvent.change(screen.getByLabelText(label), { target: { value } });

beforeEach(() => {
  tokens = [
    token({}),
    token({
      id: "33333333-3333-4333-8333-333333333333",
      name: "old agent",
      prefix: "coffer_zz99",
      grants: [{ projectId: P, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
      revokedAt: timestampFromDate(new Date("2026-12-02T10:00:00Z")),
    }),
  ];
  listed = [];
  created = [];
  revoked = [];
  refusal = undefined;
  sessionStorage.clear();
  localStorage.clear();
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

describe("the Tokens screen", () => {
  it("lists the project's tokens with their grants in words, revoked ones on request", async () => {
    renderPanel("11111111-1111-4111-8111-111111111111");
    const table = await screen.findByRole("table", { name: "Tokens" });
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.textContent).toContain("ci");
    expect(rows[0]?.textContent).toContain("You");
    expect(rows[0]?.textContent).toContain("coffer_ab12…");
    expect(rows[0]?.textContent).toContain("Read only on billing, every folder");
    expect(rows[0]?.textContent).toContain("Never");
    expect(rows[0]?.textContent).toContain("Active");
    expect(listed.at(-1)).toMatchObject({ projectId: P, includeInactive: false, page: 1 });

    fireEvent.click(screen.getByLabelText("Show revoked and expired tokens"));
    await waitFor(() => expect(screen.getByText("old agent")).toBeTruthy());
    expect(listed.at(-1)?.includeInactive).toBe(true);
    const old = screen.getByText("old agent").closest("tr");
    expect(old?.textContent).toContain("Access on billing, /prod and below");
    expect(old?.textContent).toContain("Revoked");
    expect(within(old as HTMLElement).queryByRole("button")).toBeNull();
  });

  it("creates a token with its grants and expiry, shows the value once with Copy, and forgets it on Done", async () => {
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    renderPanel();
    await screen.findByRole("table", { name: "Tokens" });

    change("Name", "billing API");
    change("Role (grant 1)", String(Role.SECRET_ACCESS));
    change("Folder (grant 1, optional)", "/prod");
    fireEvent.click(screen.getByRole("button", { name: "+ Add a grant" }));
    change("Project (grant 2)", Q);
    change("Role (grant 2)", String(Role.READ_ONLY));
    change("Expires", "30d");
    const before = Date.now();
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Create token" }));
    });

    await screen.findByText("Token “billing API” created");
    expect(created).toHaveLength(1);
    const req = created[0] as CreateTokenRequest;
    expect(req.name).toBe("billing API");
    expect(req.format).toBe(TokenFormat.COFFER);
    expect(req.grants.map((g) => [g.projectId, g.role, g.pathPrefix])).toEqual([
      [P, Role.SECRET_ACCESS, "/prod"],
      [Q, Role.READ_ONLY, "/"],
    ]);
    const expires = timestampDate(req.expiresAt ?? timestampFromDate(new Date(0))).getTime();
    expect(expires - before).toBeGreaterThanOrEqual(30 * 86_400_000 - 1_000);
    expect(expires - before).toBeLessThan(30 * 86_400_000 + 60_000);

    // Shown once, with Copy; nowhere else.
    expect((screen.getByLabelText("Token") as HTMLInputElement).value).toBe(VALUE);
    expect(screen.getByRole("note").textContent).toContain("only time it is shown");
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Copy" }));
    });
    expect(writeText).toHaveBeenCalledWith(VALUE);
    expect(screen.getByRole("status").textContent).toBe("Copied");
    expect(
      JSON.stringify(
        queryClient
          .getMutationCache()
          .getAll()
          .map((m) => m.state.data),
      ),
    ).not.toContain(VALUE);
    expect(sessionStorage.length + localStorage.length).toBe(0);
    expect(window.location.href).not.toContain(VALUE);
    // The list shows the new token.
    await waitFor(() => expect(screen.getAllByText("billing API").length).toBeGreaterThan(1));

    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(document.body.innerHTML).not.toContain(VALUE);
    expect(screen.getByRole("button", { name: "Create token" })).toBeTruthy();
  });

  it("creates a Scaleway-compatible key, showing its access key and secret key once, each with Copy", async () => {
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    renderPanel();
    await screen.findByRole("table", { name: "Tokens" });

    change("Name", "terraform");
    const format = screen.getByLabelText("Key format");
    expect((format as HTMLSelectElement).value).toBe(String(TokenFormat.COFFER));
    change("Key format", String(TokenFormat.SCALEWAY));
    const help = document.getElementById(format.getAttribute("aria-describedby") ?? "");
    expect(help?.textContent).toContain("an access key and a secret key");
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Create token" }));
    });

    await screen.findByText("Token “terraform” created");
    expect(created.map((r) => r.format)).toEqual([TokenFormat.SCALEWAY]);
    expect((screen.getByLabelText("Access key") as HTMLInputElement).value).toBe(ACCESS_KEY);
    expect((screen.getByLabelText("Secret key") as HTMLInputElement).value).toBe(SECRET_KEY);
    expect(screen.getByRole("note").textContent).toContain("only time it is shown");
    expect(document.body.textContent).toContain("SCW_ACCESS_KEY and SCW_SECRET_KEY");

    // Each Copy copies its own value and says so next to itself.
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Copy secret key" }));
    });
    expect(writeText).toHaveBeenLastCalledWith(SECRET_KEY);
    expect(screen.getAllByRole("status").map((s) => s.textContent)).toEqual(["", "Copied"]);
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Copy access key" }));
    });
    expect(writeText).toHaveBeenLastCalledWith(ACCESS_KEY);
    expect(screen.getAllByRole("status").map((s) => s.textContent)).toEqual(["Copied", "Copied"]);
    expect(
      JSON.stringify(
        queryClient
          .getMutationCache()
          .getAll()
          .map((m) => m.state.data),
      ),
    ).not.toContain(SECRET_KEY);

    // Listed by its whole access key; the secret key is gone once Done.
    await waitFor(() => expect(screen.getAllByText("terraform").length).toBeGreaterThan(1));
    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(document.body.innerHTML).not.toContain(SECRET_KEY);
    const table = screen.getByRole("table", { name: "Tokens" });
    const cell = within(table).getByText(ACCESS_KEY);
    expect(cell.textContent).toBe(ACCESS_KEY);
    expect(cell.closest("tr")?.textContent).toContain("terraform");
  });

  it("checks a folder as you type, and shows the server's refusal next to the field it names", async () => {
    renderPanel();
    await screen.findByRole("table", { name: "Tokens" });
    change("Name", "x");
    change("Folder (grant 1, optional)", "prod");
    const folder = screen.getByLabelText("Folder (grant 1, optional)");
    expect(folder.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByText(/Must start with "\/"/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Create token" }));
    expect(created).toHaveLength(0);

    change("Folder (grant 1, optional)", "/prod/bad name");
    refusal = new ConnectError(
      "grants[0].path_prefix: segment 2 must not contain spaces",
      Code.InvalidArgument,
      undefined,
      [
        {
          desc: BadRequestSchema,
          value: {
            fieldViolations: [
              { field: "grants[0].path_prefix", description: "segment 2 must not contain spaces" },
            ],
          },
        },
      ],
    );
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Create token" }));
    });
    await screen.findByText("Segment 2 must not contain spaces.");
    const id = folder.getAttribute("aria-describedby") ?? "";
    expect(document.getElementById(id)?.textContent).toBe("Segment 2 must not contain spaces.");
    expect(folder.getAttribute("aria-invalid")).toBe("true");
  });

  it("refuses an expiry date in the past before asking the server", async () => {
    renderPanel();
    await screen.findByRole("table", { name: "Tokens" });
    change("Name", "x");
    change("Expires", "custom");
    change("Expiry date", "2001-01-01T00:00");
    fireEvent.click(screen.getByRole("button", { name: "Create token" }));
    expect(await screen.findByText("Choose an expiry date in the future.")).toBeTruthy();
    expect(created).toHaveLength(0);
  });

  it("asks before revoking, warns when it is the caller's own token, then revokes", async () => {
    renderPanel("11111111-1111-4111-8111-111111111111");
    await screen.findByRole("table", { name: "Tokens" });
    fireEvent.click(screen.getByRole("button", { name: "Revoke ci" }));
    const dialog = await screen.findByRole("dialog", { name: "Revoke the token “ci”?" });
    expect(dialog.textContent).toContain("the console will sign you out");
    expect(revoked).toEqual([]);
    await act(async () => {
      fireEvent.click(within(dialog).getByRole("button", { name: "Revoke token" }));
    });
    expect(revoked).toEqual(["11111111-1111-4111-8111-111111111111"]);
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    await waitFor(() => expect(screen.queryByText("ci")).toBeNull());
  });
});

describe("exchanged tokens", () => {
  const exchanged = (over: MessageInitShape<typeof TokenSchema>) =>
    token({
      name: "deploy: repo:acme/payments:ref:refs/heads/main",
      prefix: "coffer_ex01",
      grants: [{ projectId: P, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
      createdBy: "",
      bindingId: BINDING,
      issuer: ISSUER,
      subject: "repo:acme/payments:ref:refs/heads/main",
      ...over,
    });

  it("shows an exchanged token's binding, issuer and subject under its name", async () => {
    tokens = [
      token({ createdBy: "" }),
      token({
        id: "66666666-6666-4666-8666-666666666666",
        name: "made by ci",
        prefix: "coffer_cd34",
        createdBy: "11111111-1111-4111-8111-111111111111",
      }),
      exchanged({
        id: "77777777-7777-4777-8777-777777777777",
        expiresAt: timestampFromDate(new Date(Date.now() + 600_000)),
      }),
    ];
    renderPanel();
    const table = await screen.findByRole("table", { name: "Tokens" });
    const row = (name: string) =>
      within(table)
        .getByRole("rowheader", { name: new RegExp(`^${name}`) })
        .closest("tr");
    const ex = row("deploy: ") as HTMLElement;
    await waitFor(() => expect(ex.textContent).toContain("Bindingdeploy"));
    expect(within(ex).getByText("Exchanged").className).toContain("badge-info");
    expect(ex.textContent).toContain("Subjectrepo:acme/payments:ref:refs/heads/main");
    expect(ex.textContent).toContain(`Issuer${ISSUER}`);
    expect(ex.textContent).toContain("Active");
    expect(row("ci")?.textContent).not.toContain("Exchanged");
    expect(row("made by ci")?.textContent).not.toContain("Exchanged");
  });

  it("lists an expired exchanged token only with the revoked and expired ones", async () => {
    tokens = [
      token({}),
      exchanged({
        id: "77777777-7777-4777-8777-777777777777",
        expiresAt: timestampFromDate(new Date(Date.now() - 60_000)),
      }),
    ];
    renderPanel();
    await screen.findByRole("table", { name: "Tokens" });
    expect(screen.queryByRole("rowheader", { name: /^deploy: / })).toBeNull();
    fireEvent.click(screen.getByLabelText("Show revoked and expired tokens"));
    const name = await screen.findByRole("rowheader", { name: /^deploy: / });
    const row = name.closest("tr") as HTMLElement;
    expect(row.textContent).toContain("Expired");
    expect(row.textContent).toContain("Exchanged");
  });

  it("names a binding it cannot list by the start of its id", async () => {
    tokens = [exchanged({ bindingId: "88888888-8888-4888-8888-888888888888" })];
    renderPanel();
    const name = await screen.findByRole("rowheader", { name: /^deploy: / });
    const row = name.closest("tr") as HTMLElement;
    await waitFor(() => expect(row.textContent).toContain("Binding88888888…"));
  });
});

describe("prefixProblem", () => {
  it.each([
    ["", undefined],
    ["/", undefined],
    ["/prod", undefined],
    ["/prod/", undefined],
    ["prod", 'Must start with "/" (e.g. /prod), or stay empty for every folder.'],
    ["/a//b", 'Must not contain empty segments ("//").'],
  ])("%j -> %s", (prefix, want) => {
    expect(prefixProblem(prefix)).toBe(want);
  });
});
