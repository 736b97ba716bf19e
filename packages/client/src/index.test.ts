import { describe, expect, it } from "vitest";
import { createCofferTransport } from "./index.ts";

describe("createCofferTransport tls", () => {
  it("refuses TLS settings with a cleartext URL rather than ignoring them", () => {
    for (const protocol of ["grpc", "connect", "grpc-web"] as const) {
      expect(() =>
        createCofferTransport({ url: "http://127.0.0.1:8080", protocol, tls: { ca: "x" } }),
      ).toThrow("the tls option needs an https:// url (got http://127.0.0.1:8080)");
    }
    expect(() =>
      createCofferTransport({ url: "https://127.0.0.1:8080", tls: { ca: "x" } }),
    ).not.toThrow();
  });

  it("needs a client certificate and its key together", () => {
    expect(() =>
      createCofferTransport({ url: "https://127.0.0.1:8080", tls: { cert: "c" } }),
    ).toThrow("the tls option needs cert and key together");
    expect(() =>
      createCofferTransport({ url: "https://127.0.0.1:8080", tls: { key: "k" } }),
    ).toThrow("the tls option needs cert and key together");
  });
});
