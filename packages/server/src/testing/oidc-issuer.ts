import { randomUUID } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Role } from "@coffer/api";
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import type { AdminClient } from "./clients.ts";

/**
 * A real OIDC issuer in the test process, for the tests of workload
 * identity: keys made with jose, its discovery document
 * (`/.well-known/openid-configuration`) and JWKS (`/jwks`) served by
 * node:http on 127.0.0.1 (Coffer fetches http only from the loopback).
 * Keys can be added (rotation) and removed; the fetches are counted.
 */

/** The algorithms a test key may use. */
export type TestKeyAlg = "RS256" | "ES256" | "EdDSA";

export interface TestSignOptions {
  /** The key to sign with; default: the newest published key. */
  kid?: string;
  /** Claims set or overridden; `iss`, `aud`, `sub`, `iat`, `exp` have defaults (undefined removes one). */
  claims?: Record<string, unknown>;
  /** Seconds from now until `exp` (default 600); ignored when claims.exp is given. */
  expiresInS?: number;
  /** Extra protected-header members (e.g. a `typ`); `alg` and `kid` come from the key. */
  header?: Record<string, unknown>;
}

export interface TestOidcIssuer {
  /** The issuer URL: the `iss` of its tokens and the base of discovery (http://127.0.0.1:port). */
  readonly url: string;
  /** Its JWKS URL. */
  readonly jwksUrl: string;
  /** The audience its tokens name by default. */
  readonly audience: string;
  /** How many times the JWKS was fetched. */
  readonly jwksFetches: number;
  /** How many times the discovery document was fetched. */
  readonly discoveryFetches: number;
  /** The key ids it publishes, oldest first. */
  readonly keyIds: readonly string[];
  /** The published keys (public only), as a JWKS document: what static_jwks takes. */
  publicJwks(): JSONWebKeySet;
  /** Makes a new key, publishes it, and makes it the default signing key; returns its kid. */
  addKey(alg?: TestKeyAlg): Promise<string>;
  /** Stops publishing a key (it can still sign: a token signed with it must be refused). */
  removeKey(kid: string): void;
  /** A signed JWT with default claims (iss, aud, sub "test-subject", iat, exp) and `options`. */
  sign(options?: TestSignOptions): Promise<string>;
  /** The raw public key bytes (SPKI PEM) of a key: what an HS256 confusion attack signs with. */
  publicKeyPem(kid: string): Promise<string>;
  close(): Promise<void>;
}

interface TestKey {
  kid: string;
  alg: TestKeyAlg;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicKey: CryptoKey;
  published: boolean;
}

/** Starts an issuer with one key of `alg` (default RS256). Close it in afterAll. */
export async function startOidcIssuer(
  options: { alg?: TestKeyAlg; audience?: string } = {},
): Promise<TestOidcIssuer> {
  const keys: TestKey[] = [];
  let jwksFetches = 0;
  let discoveryFetches = 0;
  let url = "";
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/.well-known/openid-configuration") {
      discoveryFetches += 1;
      json(res, {
        issuer: url,
        jwks_uri: `${url}/jwks`,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256", "ES256", "EdDSA"],
      });
    } else if (path === "/jwks") {
      jwksFetches += 1;
      json(res, jwks());
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const audience = options.audience ?? "coffer-test";

  const jwks = (): JSONWebKeySet => ({
    keys: keys.filter((k) => k.published).map((k) => k.publicJwk),
  });

  const addKey = async (alg: TestKeyAlg = options.alg ?? "RS256") => {
    const { privateKey, publicKey } = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === "EdDSA" && { crv: "Ed25519" }),
    });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
    keys.push({ kid, alg, privateKey, publicKey, publicJwk, published: true });
    return kid;
  };
  await addKey();

  const keyOf = (kid: string | undefined): TestKey => {
    const key =
      kid === undefined ? keys.filter((k) => k.published).at(-1) : keys.find((k) => k.kid === kid);
    if (key === undefined) throw new Error(`the test issuer has no key ${kid}`);
    return key;
  };

  return {
    url,
    jwksUrl: `${url}/jwks`,
    audience,
    get jwksFetches() {
      return jwksFetches;
    },
    get discoveryFetches() {
      return discoveryFetches;
    },
    get keyIds() {
      return keys.filter((k) => k.published).map((k) => k.kid);
    },
    publicJwks: jwks,
    addKey,
    removeKey(kid) {
      keyOf(kid).published = false;
    },
    async sign(o = {}) {
      const key = keyOf(o.kid);
      const now = Math.floor(Date.now() / 1000);
      const claims: Record<string, unknown> = {
        iss: url,
        aud: audience,
        sub: "test-subject",
        iat: now,
        exp: now + (o.expiresInS ?? 600),
        ...o.claims,
      };
      for (const [name, value] of Object.entries(claims)) {
        if (value === undefined) delete claims[name];
      }
      return new SignJWT(claims as JWTPayload)
        .setProtectedHeader({ ...o.header, alg: key.alg, kid: key.kid })
        .sign(key.privateKey);
    },
    publicKeyPem: (kid) => exportSPKI(keyOf(kid).publicKey),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(data),
  });
  res.end(data);
}

export interface TrustTestIssuerOptions {
  /** The binding's grants (path prefix default "/"). */
  grants: { projectId: string; role: Role; pathPrefix?: string }[];
  /** The binding's conditions; default: sub = "test-subject" (what sign() puts in by default). */
  conditions?: { claim: string; value: string; glob?: boolean }[];
  /** The binding's token_ttl in seconds (60-3600); default: the server's 15 minutes. */
  tokenTtlS?: number;
  /** Where Coffer takes the keys from; default discovery. */
  keys?: "discovery" | "jwks_url" | "static";
  /** Names (unique among issuers); default random. */
  name?: string;
}

/**
 * Trusts a test issuer and binds its tokens, through AdminService with a
 * global admin client: what an admin does with `coffer issuer create` and
 * `coffer binding create`. Returns the ids made.
 */
export async function trustTestIssuer(
  admin: AdminClient,
  issuer: TestOidcIssuer,
  options: TrustTestIssuerOptions,
): Promise<{ issuerId: string; bindingId: string }> {
  const name = options.name ?? `test-issuer-${randomUUID().slice(0, 8)}`;
  const source = options.keys ?? "discovery";
  const created = await admin.createTrustedIssuer({
    issuer: {
      name,
      issuerUrl: issuer.url,
      audiences: [issuer.audience],
      keys:
        source === "discovery"
          ? { case: "discovery", value: true }
          : source === "jwks_url"
            ? { case: "jwksUrl", value: issuer.jwksUrl }
            : { case: "staticJwks", value: JSON.stringify(issuer.publicJwks()) },
    },
  });
  const issuerId = created.issuer?.id ?? "";
  const bound = await admin.createIdentityBinding({
    binding: {
      name: `${name} binding`,
      issuerId,
      conditions: (options.conditions ?? [{ claim: "sub", value: "test-subject" }]).map((c) => ({
        claim: c.claim,
        value: c.value,
        glob: c.glob ?? false,
      })),
      grants: options.grants.map((g) => ({
        projectId: g.projectId,
        role: g.role,
        pathPrefix: g.pathPrefix ?? "/",
      })),
      ...(options.tokenTtlS !== undefined && {
        tokenTtl: durationFromMs(options.tokenTtlS * 1000),
      }),
    },
  });
  return { issuerId, bindingId: bound.binding?.id ?? "" };
}
