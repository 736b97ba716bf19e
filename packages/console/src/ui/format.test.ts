import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { formatDuration, fullPath } from "./format.ts";

const d = (seconds: number) => create(DurationSchema, { seconds: BigInt(seconds) });

describe("formatDuration", () => {
  it("says a time to live in words", () => {
    expect(formatDuration(d(3600))).toBe("1 hour");
    expect(formatDuration(d(5400))).toBe("1 hour 30 minutes");
    expect(formatDuration(d(365 * 86_400))).toBe("365 days");
    expect(formatDuration(d(1))).toBe("1 second");
    expect(formatDuration(undefined)).toBe("—");
  });
});

describe("fullPath", () => {
  it("joins a folder and a name with one slash", () => {
    expect(fullPath("/", "a")).toBe("/a");
    expect(fullPath("/prod/db", "pw")).toBe("/prod/db/pw");
  });
});
