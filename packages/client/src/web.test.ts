import { describe, expect, it } from "vitest";
import { bundleForBrowser } from "./web-bundle.ts";

describe("@coffer/client/web", () => {
  it("bundles for the browser without any Node built-in", async () => {
    const bundle = await bundleForBrowser("web.ts");
    expect(bundle.nodeBuiltins).toEqual([]);
    expect(bundle.inputs.some((f) => f.includes("@connectrpc/connect-web"))).toBe(true);
    expect(bundle.inputs.filter((f) => f.includes("connect-node"))).toEqual([]);
    expect(bundle.code).toContain("createCoffer");
    // The JWT exchange comes without the Node entry's file reading.
    expect(bundle.code).toContain("jwtTokenProvider");
    expect(bundle.code).not.toContain("jwtFile");
  });

  it("would notice a Node built-in: the Node entry has several", async () => {
    const bundle = await bundleForBrowser("index.ts");
    expect(bundle.nodeBuiltins.length).toBeGreaterThan(0);
    expect(bundle.nodeBuiltins.join("\n")).toMatch(/^(node:)?http2 \(imported by /m);
  });
});
