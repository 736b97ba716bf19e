import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { EphemeralAction, EphemeralPolicySchema } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { formatDuration, policyText } from "./secret-run.ts";

describe("policies in words", () => {
  it("describes a policy", () => {
    expect(
      policyText(
        create(EphemeralPolicySchema, {
          timeToLive: durationFromMs(5_400_000),
          expiresOnceAccessed: true,
          action: EphemeralAction.DELETE,
        }),
      ),
    ).toBe("ttl 1h30m, single access, then delete");
    expect(policyText(undefined)).toBe("");
    expect(formatDuration(90_061_000)).toBe("1d1h1m1s");
  });
});
