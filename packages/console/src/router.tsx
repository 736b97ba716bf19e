import {
  createRootRoute,
  createRoute,
  createRouter,
  lazyRouteComponent,
  redirect,
} from "@tanstack/react-router";
import { validateAuditSearch } from "./screens/audit-search.ts";
import { NotFoundScreen } from "./screens/not-found.tsx";
import { ProjectsScreen } from "./screens/projects.tsx";
import { SecretsScreen } from "./screens/secrets.tsx";
import { SignInScreen } from "./screens/sign-in.tsx";
import {
  validateCreateSecretSearch,
  validateImportSearch,
  validateSecretsSearch,
} from "./search.ts";
import { readLastPlace, readToken, writeLastPlace } from "./session/session.ts";
import { Shell } from "./ui/shell.tsx";

/**
 * The route tree, written in code (no file-based generation). Route ids are
 * their paths, so a screen reads its params with
 * `getRouteApi("/p/$projectId/$region/secrets/new")` without importing this
 * file (which imports the screens).
 *
 * The first screens a person sees (sign-in, the project picker, Secrets) are
 * in the entry chunk; every other screen is a chunk of its own, fetched when
 * its route is entered (lazyRouteComponent: the router waits for it before it
 * renders the route, so no fallback flashes). The first load so carries none
 * of the value forms, the reveal, bulk import, audit or tokens.
 */

/** Every screen but sign-in needs a token, and has the header and nav (Shell). */
const rootRoute = createRootRoute({
  beforeLoad: ({ location }) => {
    if (location.pathname !== "/sign-in" && readToken() === undefined) {
      throw redirect({ to: "/sign-in" });
    }
  },
  component: Shell,
  notFoundComponent: NotFoundScreen,
});

export const signInRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/sign-in",
  validateSearch: (s: Record<string, unknown>): { ended?: boolean } =>
    s.ended === true || s.ended === "true" ? { ended: true } : {},
  beforeLoad: () => {
    if (readToken() !== undefined) throw redirect({ to: "/" });
  },
  component: SignInScreen,
});

const indexRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/",
  beforeLoad: () => {
    const last = readLastPlace();
    if (last === undefined) throw redirect({ to: "/projects" });
    throw redirect({ to: "/p/$projectId/$region/secrets", params: last });
  },
});

const projectsRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/projects",
  component: ProjectsScreen,
});

/** A project in a region: every screen below works in it. */
const placeRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/p/$projectId/$region",
  beforeLoad: ({ params }) => {
    writeLastPlace({ projectId: params.projectId, region: params.region });
  },
});

const placeIndexRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/",
  beforeLoad: ({ params }) => {
    throw redirect({ to: "/p/$projectId/$region/secrets", params });
  },
});

const secretsRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/secrets",
  validateSearch: validateSecretsSearch,
  component: SecretsScreen,
});

const createSecretRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/secrets/new",
  validateSearch: validateCreateSecretSearch,
  component: lazyRouteComponent(() => import("./screens/create-secret.tsx"), "CreateSecretScreen"),
});

const secretRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/secrets/$secretId",
  component: lazyRouteComponent(() => import("./screens/secret.tsx"), "SecretScreen"),
});

const secretIndexRoute = createRoute({
  getParentRoute: () => secretRoute,
  path: "/",
  beforeLoad: ({ params }) => {
    throw redirect({ to: "/p/$projectId/$region/secrets/$secretId/overview", params });
  },
});

const overviewRoute = createRoute({
  getParentRoute: () => secretRoute,
  path: "/overview",
  component: lazyRouteComponent(
    () => import("./screens/secret-overview.tsx"),
    "SecretOverviewScreen",
  ),
});

const versionsRoute = createRoute({
  getParentRoute: () => secretRoute,
  path: "/versions",
  component: lazyRouteComponent(
    () => import("./screens/secret-versions.tsx"),
    "SecretVersionsScreen",
  ),
});

const importRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/import",
  validateSearch: validateImportSearch,
  component: lazyRouteComponent(() => import("./screens/bulk-import.tsx"), "BulkImportScreen"),
});

const auditRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/audit",
  validateSearch: validateAuditSearch,
  component: lazyRouteComponent(() => import("./screens/audit.tsx"), "AuditScreen"),
});

const tokensRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/tokens",
  component: lazyRouteComponent(() => import("./screens/tokens.tsx"), "TokensScreen"),
});

const identitiesRoute = createRoute({
  getParentRoute: () => placeRoute,
  path: "/identities",
  component: lazyRouteComponent(() => import("./screens/identities.tsx"), "IdentitiesScreen"),
});

export const routeTree = rootRoute.addChildren([
  signInRoute,
  indexRoute,
  projectsRoute,
  placeRoute.addChildren([
    placeIndexRoute,
    secretsRoute,
    createSecretRoute,
    secretRoute.addChildren([secretIndexRoute, overviewRoute, versionsRoute]),
    importRoute,
    auditRoute,
    tokensRoute,
    identitiesRoute,
  ]),
]);

export function createAppRouter() {
  return createRouter({ routeTree, defaultPreload: false, scrollRestoration: false });
}

declare module "@tanstack/react-router" {
  interface Register {
    router: ReturnType<typeof createAppRouter>;
  }
}
