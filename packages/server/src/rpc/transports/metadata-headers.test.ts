import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { MetadataHeaders } from "./metadata-headers.ts";

/** What the adapter built before MetadataHeaders: every header appended at once. */
function eager(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      headers.append(key, typeof value === "string" ? value : value.toString("base64"));
    }
  }
  return headers;
}

function sample(): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set("authorization", "Bearer coffer_abc");
  m.add("x-multi", "one");
  m.add("x-multi", " two ");
  m.set("x-trace-bin", Buffer.from([0, 1, 2, 250]));
  m.add("x-trace-bin", Buffer.from("second"));
  m.set("user-agent", "grpc-node-js/1.14.7");
  return m;
}

/** Headers' iteration, which the type declarations in use here leave out. */
type Iterating = Headers & {
  [Symbol.iterator](): IterableIterator<[string, string]>;
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
};
const it_ = (h: Headers) => h as Iterating;

const names = [
  "authorization",
  "Authorization",
  "x-multi",
  "X-MULTI",
  "x-trace-bin",
  "user-agent",
  "x-request-id",
];

describe("MetadataHeaders", () => {
  it("answers get() as a Headers filled with every request header would, before and after filling", () => {
    const lazy = new MetadataHeaders(sample());
    const full = eager(sample());
    for (const name of names) expect(lazy.get(name), name).toBe(full.get(name));
    // has() fills it; get() then reads the Headers itself.
    expect(lazy.has("x-multi")).toBe(true);
    for (const name of names) expect(lazy.get(name), name).toBe(full.get(name));
    expect([...it_(lazy)]).toEqual([...it_(full)]);
  });

  it("throws Headers' own error for a name that is not a token", () => {
    expect(() => new MetadataHeaders(sample()).get("bad name")).toThrow(/invalid header name/);
    expect(() => eager(sample()).get("bad name")).toThrow(/invalid header name/);
    expect(() => new MetadataHeaders(sample()).get("")).toThrow(/invalid header name/);
  });

  it("fills itself for every other method, and keeps what is set", () => {
    const iterate = new MetadataHeaders(sample());
    expect([...it_(iterate).entries()]).toEqual([...it_(eager(sample())).entries()]);
    expect([...it_(new MetadataHeaders(sample())).keys()]).toEqual([
      ...it_(eager(sample())).keys(),
    ]);
    expect([...it_(new MetadataHeaders(sample())).values()]).toEqual([
      ...it_(eager(sample())).values(),
    ]);
    const seen: string[] = [];
    new MetadataHeaders(sample()).forEach((value, key) => {
      seen.push(`${key}=${value}`);
    });
    expect(seen).toEqual([...it_(eager(sample()))].map(([k, v]) => `${k}=${v}`));

    const changed = new MetadataHeaders(sample());
    changed.set("x-multi", "only");
    changed.append("x-new", "v");
    changed.delete("authorization");
    expect(changed.get("x-multi")).toBe("only");
    expect(changed.get("x-new")).toBe("v");
    expect(changed.get("authorization")).toBeNull();
    expect(changed.get("user-agent")).toBe("grpc-node-js/1.14.7");
    expect(new MetadataHeaders(sample()).getSetCookie()).toEqual([]);
  });
});
