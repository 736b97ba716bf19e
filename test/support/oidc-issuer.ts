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
 * TODO-LEAD: the server's helper adds one to @coffer/server/testing
 * (`startOidcIssuer`); swap this one for it once it lands.
 */
export interface OidcIssuer {
  /** The issuer URL: the `iss` of its tokens, and the base of discovery. */
  url: string;
  /** The JWKS URL. */
  jwksUrl: string;
  /** A JWT with these claims, `iss` set, `iat` now and `exp` after `lifeSeconds`. */
  sign(claims: JWTPayload, lifeSeconds: number): Promise<string>;
  /** How many times the key set was fetched. */
  readonly jwksFetches: number;
  close(): Promise<void>;
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
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
    sign: (claims, lifeSeconds) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
        .setIssuer(url)
        .setIssuedAt(now)
        .setExpirationTime(now + lifeSeconds)
        .sign(privateKey);
    },
    get jwksFetches() {
      return jwksFetches;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
