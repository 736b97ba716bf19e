import { resolveAndNoteHome } from "./addressing.ts";
import { requirePrincipal } from "./authz.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";

/**
 * The regions this server serves, the default one first, and the default.
 * Any valid token may ask: region names are the server's configuration, not
 * secret metadata, and a client needs them before it can address anything.
 */
export async function listRegions(
  domain: Pick<DomainDeps, "regions">,
  caller: Caller,
  _input: unknown,
): Promise<{ regions: string[]; defaultRegion: string }> {
  resolveAndNoteHome(domain, caller);
  requirePrincipal(caller.principal);
  const { names, defaultRegion } = domain.regions;
  return { regions: [...names], defaultRegion };
}
