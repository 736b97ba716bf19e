import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";

/**
 * A local OIDC issuer for end-to-end tests: one ES256 key, OIDC discovery
 * (`/.well-known/openid-configuration`) and the key set (`/jwks`) served over
 * HTTP on 127.0.0.1 (Coffer accepts http:// issuers on loopback only), and
 * JWTs signed by it. Stop it in afterAll.
 *
 * TODO-LEAD: @coffer/server/testing's `startOidcIssuer` (the server's
 * helper) does this and more, with the same names for what is used here
 * (`url`, `jwksUrl`, `audience`, `sign({ claims, expiresInS })`, `close`);
 * once it is merged, import it instead and delete this file.
 */
export interface OidcIssuer {
  /** The issuer URL: the `iss` of its tokens, and the base of discovery. */
  readonly url: string;
  /** The JWKS URL. */
  readonly jwksUrl: string;
  /** The audience its tokens name by default. */
  readonly audience: string;
  /** How many times the key set was fetched. */
  readonly jwksFetches: number;
  /** A JWT with `iss`, `aud`, `sub` ("test-subject"), `iat` and `exp` (600 s), and `claims` over them. */
  sign(options?: {
    claims?: JWTPayload & Record<string, unknown>;
    expiresInS?: number;
  }): Promise<string>;
  close(): Promise<void>;
}

/** Starts an issuer whose tokens name `audience` (default "coffer"). */
export async function startOidcIssuer(options: { audience?: string } = {}): Promise<OidcIssuer> {
  const audience = options.audience ?? "coffer";
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = "e2e-key-1";
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  let jwksFetches = 0;
  let url = "";
  const server = createServer((req, res) => {
    const json = (body: unknown) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    if (req.url === "/.well-known/openid-configuration") {
      json({
        issuer: url,
        jwks_uri: `${url}/jwks`,
        id_token_signing_alg_values_supported: ["ES256"],
      });
    } else if (req.url === "/jwks") {
      jwksFetches += 1;
      json({ keys: [jwk] });
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    jwksUrl: `${url}/jwks`,
    audience,
    get jwksFetches() {
      return jwksFetches;
    },
    sign: ({ claims = {}, expiresInS = 600 } = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        iss: url,
        aud: audience,
        sub: "test-subject",
        iat: now,
        exp: now + expiresInS,
        ...claims,
      })
        .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
        .sign(privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
