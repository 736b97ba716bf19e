import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  IdentityBindingSchema,
  type ListIdentityBindingsRequest,
  type Project,
  ProjectSchema,
  Role,
  TrustedIssuerSchema,
} from "@coffer/api";
import { createRouterTransport } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IdentitiesPanel } from "./identities-panel.tsx";

const P = "0f8fad5b-d9cb-469f-a165-70867728950e";
const GITHUB = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const CLUSTER = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
const STATIC_JWKS =
  '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}';
const projects: Project[] = [create(ProjectSchema, { id: P, name: "billing" })];
const at = timestampFromDate(new Date("2026-12-01T10:00:00Z"));

let bindingRequests: ListIdentityBindingsRequest[];
let empty: boolean;

function transport() {
  return createRouterTransport(({ service }) => {
    service(AdminService, {
      listTrustedIssuers: () => ({
        issuers: empty
          ? []
          : [
              create(TrustedIssuerSchema, {
                id: GITHUB,
                name: "github",
                issuerUrl: "https://token.actions.githubusercontent.com",
                audiences: ["coffer"],
                keys: { case: "discovery", value: true },
                createdAt: at,
              }),
              create(TrustedIssuerSchema, {
                id: CLUSTER,
                name: "cluster",
                issuerUrl: "https://kubernetes.default.svc.cluster.local",
                audiences: ["coffer", "vault"],
                keys: { case: "staticJwks", value: STATIC_JWKS },
                createdAt: at,
              }),
            ],
      }),
      listIdentityBindings(req) {
        bindingRequests.push(req);
        return {
          bindings: empty
            ? []
            : [
                create(IdentityBindingSchema, {
                  id: "cccccccc-cccc-4ccc-8ccc-cccccccccccc",
                  name: "deploy",
                  issuerId: GITHUB,
                  conditions: [
                    { claim: "repository", value: "acme/payments" },
                    { claim: "ref", value: "refs/tags/v*", glob: true },
                  ],
                  grants: [{ projectId: P, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
                  tokenTtl: durationFromMs(600_000),
                  createdAt: at,
                }),
                create(IdentityBindingSchema, {
                  id: "dddddddd-dddd-4ddd-8ddd-dddddddddddd",
                  name: "web",
                  issuerId: CLUSTER,
                  conditions: [{ claim: "/kubernetes.io/namespace", value: "prod" }],
                  grants: [{ projectId: P, role: Role.READ_ONLY, pathPrefix: "/" }],
                  createdAt: at,
                }),
              ],
        };
      },
    });
  });
}

function renderPanel() {
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <TransportProvider transport={transport()}>
      <QueryClientProvider client={queryClient}>
        <IdentitiesPanel projectId={P} projects={projects} />
      </QueryClientProvider>
    </TransportProvider>,
  );
}

beforeEach(() => {
  bindingRequests = [];
  empty = false;
});
afterEach(cleanup);

const rowOf = (table: HTMLElement, name: string) =>
  within(table)
    .getByRole("rowheader", { name: new RegExp(`^${name}`) })
    .closest("tr") as HTMLElement;

describe("the Identities screen", () => {
  it("lists the trusted issuers with their audiences and where their keys come from, never a key", async () => {
    renderPanel();
    const table = await screen.findByRole("table", { name: "Trusted issuers" });
    const github = rowOf(table, "github");
    expect(github.textContent).toContain("https://token.actions.githubusercontent.com");
    expect(github.textContent).toContain("OIDC discovery");
    expect(github.textContent).toContain(GITHUB);
    const cluster = rowOf(table, "cluster");
    expect(cluster.textContent).toContain("coffer, vault");
    expect(cluster.textContent).toContain("Static keys, kept in Coffer");
    expect(document.body.innerHTML).not.toContain("11qYAYKx");
  });

  it("lists the project's bindings: issuer, conditions, grants and token life", async () => {
    renderPanel();
    const table = await screen.findByRole("table", { name: "Identity bindings" });
    expect(bindingRequests.at(-1)).toMatchObject({ projectId: P, issuerId: "" });
    const deploy = rowOf(table, "deploy");
    await within(deploy).findByText("github");
    expect(deploy.textContent).toContain("repository = acme/payments");
    expect(deploy.textContent).toContain("ref matches refs/tags/v*");
    expect(deploy.textContent).toContain("Access on billing, /prod and below");
    expect(deploy.textContent).toContain("10 min");
    const web = rowOf(table, "web");
    expect(web.textContent).toContain("/kubernetes.io/namespace = prod");
    expect(web.textContent).toContain("15 min (default)");
  });

  it("is read only, and says which commands make the changes", async () => {
    renderPanel();
    await screen.findByRole("table", { name: "Identity bindings" });
    expect(screen.queryByRole("button")).toBeNull();
    expect(document.body.textContent).toContain("coffer issuer create");
    expect(document.body.textContent).toContain("coffer binding delete <id>");
  });

  it("says so when nothing is trusted or bound", async () => {
    empty = true;
    renderPanel();
    expect(await screen.findByText(/No issuer is trusted/)).toBeTruthy();
    expect(await screen.findByText("No binding grants on this project.")).toBeTruthy();
  });
});
