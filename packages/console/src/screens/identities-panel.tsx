import {
  AdminService,
  type ClaimCondition,
  type IdentityBinding,
  type Project,
  type TrustedIssuer,
} from "@coffer/api";
import { useQuery } from "@connectrpc/connect-query";
import { DataTable } from "../ui/data-table.tsx";
import { QueryState } from "../ui/problem.tsx";
import { Time } from "../ui/time.tsx";
import { grantLabel } from "./token-roles.ts";

/** Far above any real count of issuers or bindings; the server's largest page. */
const PAGE_SIZE = 1000;

/** Where an issuer's keys come from, in words. Static keys are public, but a document: not shown. */
function keysLabel(issuer: TrustedIssuer): string {
  switch (issuer.keys.case) {
    case "discovery":
      return "OIDC discovery";
    case "jwksUrl":
      return `JWKS at ${issuer.keys.value}`;
    case "staticJwks":
      return "Static keys, kept in Coffer";
    default:
      return "—";
  }
}

/** A condition in words: `claim = value`, or `claim matches pattern` for a glob. */
function conditionLabel(c: ClaimCondition): string {
  return c.glob ? `${c.claim} matches ${c.value}` : `${c.claim} = ${c.value}`;
}

/** A binding's token life: its token_ttl, or the server's 15 minutes when unset. */
function ttlLabel(b: IdentityBinding): string {
  if (b.tokenTtl === undefined) return "15 min (default)";
  const s = Number(b.tokenTtl.seconds);
  return s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}

/**
 * The Identities screen's content, read only: the trusted issuers (every
 * one: any admin may list them) and the identity bindings that grant on
 * this project (those the caller administers wholly; ListIdentityBindings
 * hides the rest). Changes are the CLI's: the screen says which commands.
 */
export function IdentitiesPanel({
  projectId,
  projects,
}: {
  projectId: string;
  /** Names for the bindings' grants. */
  projects: readonly Project[];
}) {
  const issuers = useQuery(AdminService.method.listTrustedIssuers, { pageSize: PAGE_SIZE });
  const bindings = useQuery(AdminService.method.listIdentityBindings, {
    projectId,
    pageSize: PAGE_SIZE,
  });
  const issuerList = issuers.data?.issuers ?? [];
  const issuerNames = new Map(issuerList.map((i) => [i.id, i.name]));
  const bindingList = bindings.data?.bindings ?? [];

  return (
    <>
      <div className="notice notice-info">
        This list is read only. Trust an issuer with <code>coffer issuer create</code> and change it
        with <code>coffer issuer update</code> (a global admin), bind its identities to grants with{" "}
        <code>coffer binding create</code>, and remove one with{" "}
        <code>coffer binding delete &lt;id&gt;</code>, which revokes its tokens.
      </div>

      <section className="card" aria-labelledby="issuers-heading">
        <h2 id="issuers-heading" className="card-title">
          Trusted issuers
        </h2>
        <QueryState query={issuers} what="trusted issuers" />
        {issuers.data && issuerList.length === 0 && (
          <p className="muted">No issuer is trusted: no workload can sign in with a JWT.</p>
        )}
        {issuerList.length > 0 && (
          <DataTable
            caption="Trusted issuers"
            columns={["Name", "Issuer URL", "Audiences", "Keys", "Created"]}
          >
            {issuerList.map((i) => (
              <tr key={i.id}>
                <th scope="row">
                  {i.name}
                  <div className="identity-id mono">{i.id}</div>
                </th>
                <td className="mono identity-wrap">{i.issuerUrl}</td>
                <td className="mono identity-wrap">{i.audiences.join(", ")}</td>
                <td className="identity-wrap">{keysLabel(i)}</td>
                <td>
                  <Time at={i.createdAt} />
                </td>
              </tr>
            ))}
          </DataTable>
        )}
      </section>

      <section className="card" aria-labelledby="bindings-heading">
        <h2 id="bindings-heading" className="card-title">
          Identity bindings of this project
        </h2>
        <QueryState query={bindings} what="identity bindings" />
        {bindings.data && bindingList.length === 0 && (
          <p className="muted">No binding grants on this project.</p>
        )}
        {bindingList.length > 0 && (
          <DataTable
            caption="Identity bindings"
            columns={["Name", "Issuer", "Conditions (all must hold)", "Grants", "Token life"]}
          >
            {bindingList.map((b) => (
              <tr key={b.id}>
                <th scope="row">
                  {b.name}
                  <div className="identity-id mono">{b.id}</div>
                </th>
                <td className="nowrap">
                  {issuerNames.get(b.issuerId) ?? `${b.issuerId.slice(0, 8)}…`}
                </td>
                <td>
                  <ul className="grant-list mono identity-wrap">
                    {b.conditions.map((c) => (
                      <li key={`${c.claim} ${c.glob} ${c.value}`}>{conditionLabel(c)}</li>
                    ))}
                  </ul>
                </td>
                <td>
                  <ul className="grant-list">
                    {b.grants.map((g) => (
                      <li key={`${g.projectId} ${g.role} ${g.pathPrefix}`}>
                        {grantLabel(g, projects)}
                      </li>
                    ))}
                  </ul>
                </td>
                <td className="nowrap">{ttlLabel(b)}</td>
              </tr>
            ))}
          </DataTable>
        )}
      </section>
    </>
  );
}
