import { resolveAndNoteHome } from "../addressing.ts";
import { requireGlobalAdmin, requirePrincipal } from "../authz.ts";
import type { Caller } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import {
  type RingSource,
  type RotationResult,
  rotateMasterKey,
  rotateMasterKeyOnline,
} from "../rotate-keys.ts";

/**
 * RotateMasterKey for a global admin: with the server's ring source, adds a
 * key when the server owns a key file and rewraps every data key to the
 * active key (see rotateMasterKeyOnline); without one, only rewraps. Its
 * audit event, in the home region, is written by the call chain when the
 * rotation ends: a rotation spans many transactions, none of them the call's.
 */
export async function rotateMasterKeyAsAdmin(
  domain: DomainDeps,
  caller: Caller,
  source?: RingSource,
): Promise<RotationResult> {
  resolveAndNoteHome(domain, caller);
  requireGlobalAdmin(requirePrincipal(caller.principal));
  return source === undefined
    ? rotateMasterKey(domain, caller)
    : rotateMasterKeyOnline(domain, caller, source);
}
