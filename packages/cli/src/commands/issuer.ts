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
  update: {
    summary: "change a trusted issuer in place: its name, audiences or keys",
    description: `What is given replaces what the issuer has; the rest stays. --audience
(repeated) replaces every audience; --discovery, --jwks-url or
--static-jwks-file replaces where its keys come from. Its issuer URL never
changes (another URL is another issuer). Needs a global admin token.

Its bindings, and the tokens already exchanged, stay: a token exchanged for
a JWT signed by a key now removed, or naming an audience now removed, lives
out its life (at most 1 hour); "coffer token revoke" or "coffer binding
delete" end them sooner. The change applies from the next exchange on.`,
    args: [{ name: "ISSUER", help: "the issuer's id, name or issuer URL" }],
    options: {
      name: { type: "string", value: "NAME", help: "a new name, 1-255 characters" },
      audience: {
        type: "string",
        multiple: true,
        value: "AUD",
        help: 'an "aud" value accepted; the ones given replace them all',
      },
      discovery: { type: "boolean", help: "take its keys from OIDC discovery" },
      "jwks-url": { type: "string", value: "URL", help: "fetch its keys here" },
      "static-jwks-file": {
        type: "string",
        value: "FILE",
        help: "its public keys, a JWKS document (never fetched)",
      },
      ...OUTPUT_OPTION,
      ...CONNECTION_OPTIONS,
    },
    examples: [
      "kubectl get --raw /openid/v1/jwks > jwks.json && coffer issuer update prod-cluster --static-jwks-file jwks.json",
      "coffer issuer update github --audience coffer --audience coffer-staging",
    ],
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
