import type http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { MetadataHeaders, NodeHeaders } from "./lazy-headers.ts";

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

/** What the Connect adapter built before NodeHeaders: every header but the pseudo-headers appended at once. */
function eagerNode(headers: http.IncomingHttpHeaders): Headers {
  const web = new Headers();
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (typeof value === "string") web.append(key, value);
    else for (const v of value) web.append(key, v);
  }
  return web;
}

/** As node parses an HTTP/2 request: lower-case names, pseudo-headers, set-cookie as a list. */
function nodeSample(): http.IncomingHttpHeaders {
  return {
    ":method": "POST",
    ":path": "/coffer.v1.SecretService/AccessSecretVersion",
    ":authority": "127.0.0.1:8080",
    ":scheme": "http",
    "content-type": "application/proto",
    authorization: "Bearer coffer_abc",
    "x-padded": " two ",
    "set-cookie": ["a=1", " b=2"],
    "x-absent": undefined,
    "user-agent": "connect-es/2.1.1",
  };
}

const nodeNames = [
  "content-type",
  "Content-Type",
  "authorization",
  "x-padded",
  "set-cookie",
  "x-absent",
  "user-agent",
  "x-request-id",
];

describe("NodeHeaders", () => {
  it("answers get() as a Headers filled with every request header would, before and after filling", () => {
    const lazy = new NodeHeaders(nodeSample());
    const full = eagerNode(nodeSample());
    for (const name of nodeNames) expect(lazy.get(name), name).toBe(full.get(name));
    expect(lazy.has("x-padded")).toBe(true);
    for (const name of nodeNames) expect(lazy.get(name), name).toBe(full.get(name));
    expect([...it_(lazy)]).toEqual([...it_(full)]);
    expect(new NodeHeaders(nodeSample()).getSetCookie()).toEqual(full.getSetCookie());
  });

  it("leaves out the pseudo-headers, whose names Headers refuses", () => {
    expect(() => new NodeHeaders(nodeSample()).get(":path")).toThrow(/invalid header name/);
    expect(() => eagerNode(nodeSample()).get(":path")).toThrow(/invalid header name/);
    expect([...it_(new NodeHeaders(nodeSample())).keys()]).not.toContain(":path");
  });

  it("fills itself for every other method, and keeps what is set", () => {
    const changed = new NodeHeaders(nodeSample());
    changed.set("x-padded", "only");
    changed.append("x-new", "v");
    changed.delete("authorization");
    expect(changed.get("x-padded")).toBe("only");
    expect(changed.get("x-new")).toBe("v");
    expect(changed.get("authorization")).toBeNull();
    expect(changed.get("content-type")).toBe("application/proto");
    // A copy made from it sees its headers.
    expect([...it_(new Headers(changed))]).toEqual([...it_(changed)]);
  });
});
