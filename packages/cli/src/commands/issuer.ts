import { type CommandSpec, commands, group } from "../args.ts";
import { CONNECTION_OPTIONS, OUTPUT_OPTION, PAGE_OPTIONS } from "../flags.ts";

/** What the commands of `coffer issuer` take; issuer-run.ts has what they do. */
export const ISSUER = {
  create: {
    summary: "trust a JWT issuer, so that its workloads can sign in without a token",
    description: `Workloads then exchange the JWTs this issuer gives them (a Kubernetes
service-account token, a GitHub Actions OIDC token...) for short-lived
Coffer tokens; what those may do, identity bindings say ("coffer binding
create"). Needs a global admin token.

--issuer-url is the exact "iss" claim of its tokens; each --audience is an
"aud" value accepted (a token must name one of them). Its keys come from OIDC
discovery (<issuer-url>/.well-known/openid-configuration) unless --jwks-url
names the key set, or --static-jwks-file gives it (for an issuer Coffer
cannot reach, such as a private cluster's: kubectl get --raw /openid/v1/jwks).`,
    options: {
      name: { type: "string", value: "NAME", help: "a name for people, 1-255 characters" },
      "issuer-url": { type: "string", value: "URL", help: 'the "iss" claim of its tokens' },
      audience: {
        type: "string",
        multiple: true,
        value: "AUD",
        help: 'an "aud" value accepted (at least one)',
      },
      "jwks-url": { type: "string", value: "URL", help: "fetch its keys here, not by discovery" },
      "static-jwks-file": {
        type: "string",
        value: "FILE",
        help: "its public keys, a JWKS document (never fetched)",
      },
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "coffer issuer create --name github --issuer-url https://token.actions.githubusercontent.com --audience coffer",
      "coffer issuer create --name prod-cluster --issuer-url https://kubernetes.default.svc.cluster.local --audience coffer --static-jwks-file jwks.json",
    ],
  },
  list: {
    summary: "list the trusted issuers",
    description: "Any admin (global or of a project) may list them.",
    options: { ...PAGE_OPTIONS, ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  },
  delete: {
    summary: "stop trusting an issuer: its bindings go, their tokens are revoked",
    args: [{ name: "ISSUER", help: 'the issuer\'s id (from "coffer issuer list") or name' }],
    options: { ...OUTPUT_OPTION, ...CONNECTION_OPTIONS },
  },
} as const satisfies Record<string, CommandSpec>;

/** `coffer issuer ...`. */
export const issuerGroup = group({
  name: "issuer",
  summary: "trust JWT issuers for signing in without a token (needs an admin token)",
  children: Object.values(commands(ISSUER, async () => (await import("./issuer-run.ts")).run)),
});
