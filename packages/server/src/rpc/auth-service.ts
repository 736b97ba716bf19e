import type { AuthService } from "@coffer/api";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DomainDeps } from "../domain/context.ts";
import { exchangeToken } from "../domain/identity/exchange.ts";
import type { KeyCache } from "../domain/identity/keys.ts";
import { callerOf } from "./chain.ts";
import { durationToMs } from "./convert.ts";
import { tokenToProto } from "./convert-admin.ts";

/** What AuthService needs beyond the domain. */
export interface AuthServiceDeps {
  /** The trusted issuers' keys, cached on this replica. */
  keys: KeyCache;
  /** Called after a token is created, so that this replica stops refusing its value at once. */
  tokenCreated?(value: string): void;
}

/**
 * AuthService, implemented once for every transport and served behind the
 * call chain without a bearer token (withCallChain's `anonymous`): decode,
 * exchange, encode. The JWT is never logged or echoed: the chain logs no
 * request bodies, and a refusal says only EXCHANGE_REFUSED.
 */
export function authService(
  domain: DomainDeps,
  deps: AuthServiceDeps,
): ServiceImpl<typeof AuthService> {
  return {
    async exchangeToken(req, ctx) {
      const r = await exchangeToken(
        domain,
        callerOf(ctx),
        { jwt: req.jwt, ...(req.ttl && { ttlMs: durationToMs(req.ttl, "ttl") }) },
        { keys: deps.keys },
      );
      deps.tokenCreated?.(r.value);
      return { value: r.value, token: tokenToProto(r.token) };
    },
  };
}
