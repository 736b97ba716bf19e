import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AdminService, type Project, type Token } from "@coffer/api";
import { createConnectQueryKey, useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { DataTable } from "../ui/data-table.tsx";
import { ConfirmDialog } from "../ui/dialog.tsx";
import { Pager } from "../ui/pager.tsx";
import { ProblemMessage, QueryState } from "../ui/problem.tsx";
import { Time } from "../ui/time.tsx";
import { bindingLabel, IdentityFacts, useBindingNames } from "./identity.tsx";
import { CreateToken } from "./token-create.tsx";
import { grantLabel } from "./token-roles.ts";

const PAGE_SIZE = 50;

type Status = "active" | "expired" | "revoked";

export function tokenStatus(token: Token, now = Date.now()): Status {
  if (token.revokedAt !== undefined) return "revoked";
  if (token.expiresAt !== undefined && timestampDate(token.expiresAt).getTime() <= now) {
    return "expired";
  }
  return "active";
}

const STATUS: Record<Status, { label: string; badge: string }> = {
  active: { label: "Active", badge: "badge badge-ok" },
  expired: { label: "Expired", badge: "badge badge-warn" },
  revoked: { label: "Revoked", badge: "badge badge-danger" },
};

/**
 * Screen 10's content: the project's tokens (ListTokens: those whose grants
 * all lie on projects the caller administers), a form to create one, and
 * Revoke, which asks first. Never holds a token's value but the new one's,
 * in the create form, until Done.
 */
export function TokensPanel({
  projectId,
  projects,
  globalAdmin,
  callerTokenId,
}: {
  projectId: string;
  projects: readonly Project[];
  globalAdmin: boolean;
  /** The signed-in token: revoking it signs the console out. */
  callerTokenId: string | undefined;
}) {
  const queryClient = useQueryClient();
  const [includeInactive, setIncludeInactive] = useState(false);
  const [page, setPage] = useState(1);
  const [revoking, setRevoking] = useState<Token | undefined>();
  const list = useQuery(AdminService.method.listTokens, {
    projectId,
    includeInactive,
    page,
    pageSize: PAGE_SIZE,
  });
  const refresh = () =>
    queryClient.invalidateQueries({
      queryKey: createConnectQueryKey({
        schema: AdminService.method.listTokens,
        cardinality: undefined,
      }),
    });
  const revoke = useMutation(AdminService.method.revokeToken, {
    onSuccess: async () => {
      setRevoking(undefined);
      await refresh();
    },
  });
  const tokens = list.data?.tokens ?? [];
  const bindingNames = useBindingNames(tokens.some((t) => t.bindingId !== ""));
  const total = Number(list.data?.totalCount ?? 0);

  return (
    <>
      <CreateToken
        projectId={projectId}
        projects={projects}
        globalAdmin={globalAdmin}
        onCreated={() => void refresh()}
      />

      <section className="card" aria-labelledby="tokens-heading">
        <div className="card-head">
          <h2 id="tokens-heading" className="card-title">
            Tokens of this project
          </h2>
          <div className="field field-check">
            <input
              id="tokens-inactive"
              type="checkbox"
              checked={includeInactive}
              onChange={(e) => {
                setIncludeInactive(e.target.checked);
                setPage(1);
              }}
            />
            <label htmlFor="tokens-inactive">Show revoked and expired tokens</label>
          </div>
        </div>
        <QueryState query={list} what="tokens" />
        <ProblemMessage error={revoke.error} />
        {list.data && tokens.length === 0 && (
          <div className="empty">
            <p className="empty-title">No token has a grant on this project yet.</p>
            <p className="muted">
              Create one above for each application, agent or person that needs access.
            </p>
          </div>
        )}
        {tokens.length > 0 && (
          <DataTable
            caption="Tokens"
            className="tokens-table"
            columns={[
              "Name",
              "Prefix",
              "Grants",
              "Created",
              "Expires",
              "Status",
              { hidden: "Actions" },
            ]}
          >
            {tokens.map((t) => {
              const status = tokenStatus(t);
              return (
                <tr key={t.id}>
                  <th scope="row">
                    {t.name}
                    {t.id === callerTokenId && <span className="badge badge-info">You</span>}
                    {t.bindingId !== "" && <Exchanged token={t} bindingNames={bindingNames} />}
                  </th>
                  {/* A Scaleway-style key's prefix is its whole access key id. */}
                  <td className="mono">{t.accessKey !== "" ? t.accessKey : `${t.prefix}…`}</td>
                  <td>
                    <ul className="grant-list">
                      {t.grants.map((g) => (
                        <li key={`${g.projectId} ${g.role} ${g.pathPrefix}`}>
                          {grantLabel(g, projects)}
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td>
                    <Time at={t.createdAt} />
                  </td>
                  <td>{t.expiresAt === undefined ? "Never" : <Time at={t.expiresAt} />}</td>
                  <td>
                    <span className={STATUS[status].badge}>{STATUS[status].label}</span>
                  </td>
                  <td>
                    {status !== "revoked" && (
                      <button
                        type="button"
                        className="btn btn-small btn-danger"
                        onClick={() => {
                          revoke.reset();
                          setRevoking(t);
                        }}
                      >
                        Revoke<span className="visually-hidden"> {t.name}</span>
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </DataTable>
        )}
        <Pager page={page} pageSize={PAGE_SIZE} total={total} label="tokens" onPage={setPage} />
      </section>

      {revoking && (
        <ConfirmDialog
          title={`Revoke the token “${revoking.name}”?`}
          confirmLabel="Revoke token"
          danger
          busy={revoke.isPending}
          onCancel={() => setRevoking(undefined)}
          onConfirm={() => revoke.mutate({ tokenId: revoking.id })}
        >
          <p>
            Every call made with it is refused at once, and so are the calls of every token it
            created. This cannot be undone.
          </p>
          {revoking.id === callerTokenId && (
            <p className="notice notice-warn">
              This is the token you are signed in with: the console will sign you out.
            </p>
          )}
          <ProblemMessage error={revoke.error} />
        </ConfirmDialog>
      )}
    </>
  );
}

/**
 * A token from ExchangeToken has no creator: instead, the binding that
 * granted it, and the subject and issuer of the JWT it was exchanged for.
 */
function Exchanged({
  token: t,
  bindingNames,
}: {
  token: Token;
  bindingNames: ReadonlyMap<string, string>;
}) {
  return (
    <div className="token-origin">
      <span className="badge badge-info">Exchanged</span>
      <IdentityFacts
        facts={[
          ["Binding", bindingLabel(t.bindingId, bindingNames)],
          ...(t.subject !== "" ? [["Subject", t.subject, true] as const] : []),
          ["Issuer", t.issuer, true],
        ]}
      />
    </div>
  );
}
