import type { DescService } from "@bufbuild/protobuf";
import { AdminService, AuthService, SecretService } from "@coffer/api";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { AuditLog } from "../domain/audit-log.ts";
import type { Authenticator } from "../domain/authenticate.ts";
import type { DomainDeps } from "../domain/context.ts";
import type { DeniedCalls } from "../domain/denied-calls.ts";
import { KeyCache, type KeyCacheOptions } from "../domain/identity/keys.ts";
import type { RingSource } from "../domain/rotate-keys.ts";
import type { HealthStatus } from "../ops/health.ts";
import type { WatchFeeds } from "../watch/feed.ts";
import { adminService } from "./admin-service.ts";
import { authService } from "./auth-service.ts";
import { type CallObserver, withCallChain } from "./chain.ts";
import { Health, healthService } from "./health.ts";
import type { PeerLimiter } from "./peer-limit.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { reflectionServices } from "./reflection.ts";
import { secretService } from "./secret-service.ts";

/**
 * The services behind the call chain, which the health status lists by name
 * (Health itself and reflection are outside the chain and not listed).
 */
export const chainedServices: readonly DescService[] = [SecretService, AdminService, AuthService];

/** What the services are built from: the server opens, starts and owns all of it. */
export interface ServicesDeps {
  logger: Logger;
  domain: DomainDeps;
  /** Each region's watch fan-out; its `tokens` ends the streams of revoked tokens. */
  feeds: WatchFeeds;
  authenticator: Authenticator;
  /** The running key ring, for RotateMasterKey. */
  keys: RingSource;
  /** The serving status that grpc.health.v1 answers from. */
  health: HealthStatus;
  /** Where audit events are copied as JSON lines, besides the database. */
  auditLog?: AuditLog | undefined;
  /** Per-token call rate; absent: no limit. */
  rateLimiter?: RateLimiter | undefined;
  /** Per-address rate before authentication; absent: no limit. */
  peerLimiter?: PeerLimiter | undefined;
  /** Aggregates calls refused before any handler; absent: one event per call. */
  deniedCalls?: DeniedCalls | undefined;
  /** Called once per finished call (metrics). */
  observe?: CallObserver | undefined;
  /** The trusted issuers' key cache (COFFER_JWKS_MAX_AGE, COFFER_JWKS_REFRESH_FLOOR): one, or its options. */
  jwks?: KeyCache | KeyCacheOptions | undefined;
}

/** One service as a transport registers it. */
export interface ServedService {
  desc: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** Pairs a descriptor with its implementation, checked once here so that a list can hold both. */
function served<S extends DescService>(desc: S, impl: ServiceImpl<S>): ServedService {
  return { desc, impl: impl as unknown as Partial<ServiceImpl<DescService>> };
}

/**
 * Every service Coffer serves, built once and shared by every transport:
 * SecretService, AdminService and AuthService already wrapped in the call chain
 * (authentication, limits, audit, logging, error mapping), and Health, which
 * is outside it. A transport takes this value and serves `served`; nothing
 * else about the services is its business.
 */
export interface Services {
  secret: ServiceImpl<typeof SecretService>;
  admin: ServiceImpl<typeof AdminService>;
  auth: ServiceImpl<typeof AuthService>;
  health: ServiceImpl<typeof Health>;
  /** What a transport registers, in order. */
  served: readonly ServedService[];
  /** What server reflection describes (the served services and reflection itself). */
  descriptors: readonly DescService[];
}

/** Builds the services from their dependencies; opens, starts and listens on nothing. */
export function buildServices(deps: ServicesDeps): Services {
  const { domain, feeds, authenticator } = deps;
  const chain = {
    logger: deps.logger,
    domain,
    authenticator,
    ...(deps.deniedCalls && { deniedCalls: deps.deniedCalls }),
    ...(deps.auditLog && { auditLog: deps.auditLog }),
    ...(deps.rateLimiter && { rateLimiter: deps.rateLimiter }),
    ...(deps.peerLimiter && { peerLimiter: deps.peerLimiter }),
    ...(deps.observe && { observe: deps.observe }),
  };
  const secret = withCallChain(SecretService, secretService(domain, feeds), chain);
  const keys = deps.jwks instanceof KeyCache ? deps.jwks : new KeyCache(deps.jwks ?? {});
  const admin = withCallChain(
    AdminService,
    adminService(domain, {
      tokensRevoked: (ids) => feeds.tokens.revoked(ids),
      tokensChanged: (ids) => authenticator.forget(ids),
      tokenCreated: (value) => authenticator.learnCreated(value),
      issuerChanged: (id) => keys.forget(id),
      keys: deps.keys,
    }),
    chain,
  );
  const auth = withCallChain(
    AuthService,
    authService(domain, {
      keys,
      tokenCreated: (value) => authenticator.learnCreated(value),
    }),
    chain,
    { anonymous: true },
  );
  const health = healthService(deps.health);
  return {
    secret,
    admin,
    auth,
    health,
    served: [
      served(SecretService, secret),
      served(AdminService, admin),
      served(AuthService, auth),
      served(Health, health),
    ],
    descriptors: [...chainedServices, Health, ...reflectionServices],
  };
}

/**
 * The services as connect routes: what connect-node serves, and what a test
 * hands to `createRouterTransport` to call the real services in memory.
 */
export function routes(services: Services): (router: ConnectRouter) => void {
  return (router) => {
    for (const { desc, impl } of services.served) router.service(desc, impl);
  };
}
