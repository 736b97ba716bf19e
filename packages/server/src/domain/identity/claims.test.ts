import { describe, expect, it } from "vitest";
import { DomainError } from "../errors.ts";
import { bindingMatches, claimAt, conditionHolds, validateConditions } from "./claims.ts";
import { exchangedExpiry, selectBinding } from "./exchange.ts";

/** Claims shaped like a Kubernetes projected service-account token and a GitHub Actions token. */
const claims = {
  iss: "https://kubernetes.default.svc",
  sub: "system:serviceaccount:prod:api",
  aud: ["coffer", "other"],
  "kubernetes.io": {
    namespace: "prod",
    serviceaccount: { name: "api", uid: "8d6a" },
    pods: [{ name: "api-0" }],
  },
  "a/b": "slashed",
  "t~x": "tilde",
  repository: "acme/payments",
  ref: "refs/heads/main",
  run_number: 42,
  ref_protected: true,
  nothing: null,
  empty: "",
};

const at = (claim: string, value: string, glob = false) =>
  conditionHolds(claims, { claim, value, glob });

describe("claim conditions", () => {
  it.each([
    // [claim, value, glob, matches]
    ["sub", "system:serviceaccount:prod:api", false, true],
    ["sub", "system:serviceaccount:prod:API", false, false],
    ["sub", "system:serviceaccount:prod:*", true, true],
    ["sub", "system:serviceaccount:*", true, true],
    ["sub", "system:serviceaccount:prod:ap?", true, true],
    ["sub", "system:serviceaccount:prod:a?", true, false],
    ["sub", "*", true, true],
    ["sub", "system:serviceaccount:prod:*", false, false],
    ["repository", "acme/*", true, true],
    ["repository", "acme/payments", false, true],
    ["repository", "acme.payments", false, false],
    ["ref", "refs/heads/*", true, true],
    ["ref", "refs/tags/*", true, false],
    // a glob's other characters are themselves, regex syntax included
    ["repository", "acme/pay(ments)", true, false],
    ["repository", "acme/pay.ents", true, false],
    // JSON Pointer
    ["/kubernetes.io/namespace", "prod", false, true],
    ["/kubernetes.io/namespace", "staging", false, false],
    ["/kubernetes.io/serviceaccount/name", "api", false, true],
    ["/kubernetes.io/serviceaccount/name", "a*", true, true],
    ["/kubernetes.io/pods/0/name", "api-0", false, true],
    ["/kubernetes.io/pods/1/name", "api-0", false, false],
    ["/kubernetes.io/pods/0/name", "api-*", true, true],
    ["sub", "system:service[a]ccount:*", true, false],
    ["repository", "acme/pay{ments}", true, false],
    ["/kubernetes.io/pods/00/name", "api-0", false, false],
    ["/a~1b", "slashed", false, true],
    ["/t~0x", "tilde", false, true],
    // a top-level name is not a pointer: its dots and slashes are its own
    ["kubernetes.io", "prod", false, false],
    ["a/b", "slashed", false, true],
    // lists: one item suffices
    ["aud", "coffer", false, true],
    ["aud", "other", false, true],
    ["aud", "nobody", false, false],
    ["aud", "oth*", true, true],
    // numbers and booleans as their JSON text
    ["run_number", "42", false, true],
    ["run_number", "4*", true, true],
    ["run_number", "42.0", false, false],
    ["ref_protected", "true", false, true],
    ["ref_protected", "false", false, false],
    // missing, null, objects never match, not even "*"
    ["missing", "*", true, false],
    ["/kubernetes.io/missing", "*", true, false],
    ["/kubernetes.io/namespace/deeper", "*", true, false],
    ["nothing", "null", false, false],
    ["nothing", "*", true, false],
    ["kubernetes.io", "*", true, false],
    ["/kubernetes.io/serviceaccount", "*", true, false],
    ["empty", "*", true, true],
  ])("%s vs %j (glob %s): %s", (claim, value, glob, matches) => {
    expect(at(claim, value, glob)).toBe(matches);
  });

  it("resolves JSON Pointers as RFC 6901 says", () => {
    expect(claimAt(claims, "/kubernetes.io/serviceaccount/uid")).toBe("8d6a");
    expect(claimAt(claims, "/")).toBeUndefined();
    expect(claimAt(claims, "sub")).toBe(claims.sub);
    // inherited properties are not claims
    expect(claimAt(claims, "constructor")).toBeUndefined();
    expect(claimAt(claims, "/constructor")).toBeUndefined();
  });

  it("matches a binding when every condition holds, and never without conditions", () => {
    const ns = { claim: "/kubernetes.io/namespace", value: "prod", glob: false };
    const sa = { claim: "/kubernetes.io/serviceaccount/name", value: "api", glob: false };
    const other = { claim: "/kubernetes.io/serviceaccount/name", value: "web", glob: false };
    expect(bindingMatches(claims, [ns, sa])).toBe(true);
    expect(bindingMatches(claims, [ns, other])).toBe(false);
    expect(bindingMatches(claims, [])).toBe(false);
  });

  it("refuses conditions by field and rule", () => {
    const field = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof DomainError ? [e.field, e.rule] : e;
      }
      return undefined;
    };
    expect(field(() => validateConditions([]))).toEqual([
      "binding.conditions",
      expect.stringContaining("at least one condition"),
    ]);
    expect(field(() => validateConditions([{ claim: "", value: "x", glob: false }]))).toEqual([
      "binding.conditions[0].claim",
      expect.stringContaining("is required"),
    ]);
    expect(
      field(() =>
        validateConditions([
          { claim: "sub", value: "x", glob: false },
          { claim: "/a~2b", value: "x", glob: false },
        ]),
      ),
    ).toEqual(["binding.conditions[1].claim", expect.stringContaining("RFC 6901")]);
    expect(field(() => validateConditions([{ claim: "sub", value: "", glob: true }]))).toEqual([
      "binding.conditions[0].value",
      expect.stringContaining("is required"),
    ]);
    const many = Array.from({ length: 33 }, () => ({ claim: "sub", value: "x", glob: false }));
    expect(field(() => validateConditions(many))).toEqual([
      "binding.conditions",
      expect.stringContaining("at most 32"),
    ]);
  });
});

describe("choosing among matching bindings", () => {
  const grant = (projectId: string, role = "read_only", pathPrefix = "/") => ({
    projectId,
    role,
    pathPrefix,
  });
  const binding = (id: string, value: string, grants: ReturnType<typeof grant>[]) => ({
    id,
    name: id,
    issuerId: "i",
    conditions: [{ claim: "sub", value, glob: true }],
    grants,
    tokenTtlMs: 900_000,
    createdAt: new Date(0),
    createdBy: null,
  });

  it("takes the one that matches, refuses none", () => {
    const a = binding("a", "system:*", [grant("p")]);
    const b = binding("b", "user:*", [grant("q")]);
    expect(selectBinding(claims, [a, b])).toEqual({ binding: a });
    expect(selectBinding(claims, [b])).toEqual({ refusal: "no binding matches" });
  });

  it("refuses several that disagree, even when one is more specific", () => {
    const broad = binding("b2", "system:*", [grant("p")]);
    const narrow = binding("b1", "system:serviceaccount:prod:api", [grant("p", "admin")]);
    expect(selectBinding(claims, [broad, narrow])).toEqual({
      refusal: "bindings disagree (b1, b2)",
    });
  });

  it("accepts several with the same grants (as a set), recording the first by id", () => {
    const one = binding("c2", "system:*", [grant("p"), grant("q", "secret_access", "/prod")]);
    const two = binding("c1", "*:prod:*", [grant("q", "secret_access", "/prod"), grant("p")]);
    expect(selectBinding(claims, [one, two])).toEqual({ binding: two });
  });
});

describe("an exchanged token's expiry", () => {
  const now = 1_000_000_000_000;
  const exp = (s: number) => now / 1000 + s;
  it.each([
    // [binding ttl ms, JWT exp in s from now, requested ms, life ms]
    [900_000, 3600, undefined, 900_000],
    [900_000, 3600, 60_000, 60_000],
    [900_000, 3600, 7_200_000, 900_000],
    [3_600_000, 7200, undefined, 3_600_000],
    [3_600_000, 7200, 3_600_000, 3_600_000],
    // the JWT's own expiry caps it
    [900_000, 120, undefined, 120_000],
    [3_600_000, 1800, 3_600_000, 1_800_000],
  ])("binding %i ms, JWT exp +%i s, asked %s ms: lives %i ms", (ttl, expS, asked, life) => {
    expect(exchangedExpiry(now, ttl, exp(expS), asked) - now).toBe(life);
  });

  it("never lives longer than an hour, whatever the binding says", () => {
    expect(exchangedExpiry(now, 10 * 3_600_000, exp(86_400)) - now).toBe(3_600_000);
  });
});
