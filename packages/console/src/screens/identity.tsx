import { AdminService } from "@coffer/api";
import { skipToken, useQuery } from "@connectrpc/connect-query";
import type { ReactNode } from "react";

/**
 * What the admin screens show of workload identity (README, "Signing in
 * without a token"): who signed in with a JWT (its issuer and subject, as
 * the JWT claimed them), through which identity binding, and why a refused
 * exchange was refused. Never the JWT itself: the server keeps none.
 */

/** The full name of AuthService's one method, as the audit trail records it. */
export const EXCHANGE_TOKEN = "coffer.auth.v1.AuthService/ExchangeToken";

/**
 * The names of the identity bindings the caller may list (every one for a
 * global admin; those granting only on projects it administers otherwise),
 * by id. Asked only when `wanted`: most pages show no exchange at all.
 */
export function useBindingNames(wanted: boolean): ReadonlyMap<string, string> {
  const bindings = useQuery(
    AdminService.method.listIdentityBindings,
    wanted ? { pageSize: 1000 } : skipToken,
  );
  return new Map((bindings.data?.bindings ?? []).map((b) => [b.id, b.name]));
}

/**
 * A binding by name, or by the start of its id when the caller cannot list
 * it (deleted, or also granting on a project it does not administer).
 */
export function bindingLabel(id: string, names: ReadonlyMap<string, string>): string {
  return names.get(id) ?? `${id.slice(0, 8)}…`;
}

/**
 * The facts of a sign-in as a short list of labelled lines. Issuer URLs and
 * subjects are long and unbroken ("repo:acme/payments:ref:refs/heads/main"):
 * they wrap anywhere rather than widen the table.
 */
export function IdentityFacts({
  facts,
}: {
  facts: readonly (readonly [label: string, value: ReactNode, mono?: boolean])[];
}) {
  return (
    <dl className="identity-facts">
      {facts.map(([label, value, mono]) => (
        <div key={label}>
          <dt>{label}</dt>
          <dd className={mono ? "mono" : undefined}>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
