/**
 * `@coffer/server/testing`: the server's test helpers, for the tests of the
 * packages above it (the client, the CLI) that need a real server. A
 * development entry: listed as a devDependency by whoever imports it, never
 * imported by shipped code, and left out of a published build. The server's
 * own tests import these files directly.
 */

// For bench/test-databases.ts: what opening a test database costs, with and
// without the templates.
export { type Database, openDatabase } from "../db/client.ts";
// For bench/baselines/grpc-js-adapter-echo.ts: the grpc-js echo served
// through Coffer's grpc-js adapter, to tell the adapter's cost from grpc-js's.
export { addService } from "../rpc/transports/grpc-js.ts";
// For bench/probes/retention.ts: the renewal the server gives its churned Maps.
export { freshMap } from "../rpc/transports/stream-tables.ts";
export {
  dropPostgresDatabase,
  postgresBackend,
  prepareDatabase,
  startTestServer,
  testConfig,
} from "./backends.ts";
export { createTestCertificates } from "./certs.ts";
export {
  type AdminClient,
  type AuthClient,
  adminClient,
  authClient,
  type TransportOptions,
  testTransport,
} from "./clients.ts";
export { makePostgresTemplate, pgliteTemplateTar } from "./global-setup.ts";
export { h2Frame, hpackLiterals } from "./h2-frames.ts";
export {
  startOidcIssuer,
  type TestKeyAlg,
  type TestOidcIssuer,
  type TestSignOptions,
  type TrustTestIssuerOptions,
  trustTestIssuer,
} from "./oidc-issuer.ts";
export { serverBackends, type TestServer } from "./rpc-servers.ts";
export { sweepNow } from "./sweep.ts";
export { loadPgliteTemplate } from "./templates.ts";
