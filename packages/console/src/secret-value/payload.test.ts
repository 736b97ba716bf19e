import { SecretType } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { clipboardText, showValue } from "./payload.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("showValue", () => {
  it("lays out key_value as its keys and values", () => {
    expect(showValue(SecretType.KEY_VALUE, bytes('{"A":"x","N":3,"B":true}'))).toEqual({
      kind: "fields",
      fields: [
        ["A", "x"],
        ["N", "3"],
        ["B", "true"],
      ],
    });
  });

  it("lays out credentials as their fields, in a fixed order", () => {
    const db = bytes(
      JSON.stringify({
        password: "p",
        username: "u",
        engine: "postgres",
        host: "h",
        port: "5432",
        dbname: "d",
      }),
    );
    const shown = showValue(SecretType.DATABASE_CREDENTIALS, db);
    expect(shown.kind === "fields" && shown.fields.map(([k]) => k)).toEqual([
      "engine",
      "host",
      "port",
      "dbname",
      "username",
      "password",
    ]);
    expect(
      showValue(SecretType.BASIC_CREDENTIALS, bytes('{"username":"u","password":"p"}')),
    ).toEqual({
      kind: "fields",
      fields: [
        ["username", "u"],
        ["password", "p"],
      ],
    });
  });

  it("shows an SSH key's PEM as monospaced text, and an opaque text as itself", () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
    expect(showValue(SecretType.SSH_KEY, bytes(JSON.stringify({ ssh_private_key: key })))).toEqual({
      kind: "text",
      text: key,
      mono: true,
    });
    expect(showValue(SecretType.OPAQUE, bytes("hello"))).toEqual({
      kind: "text",
      text: "hello",
      mono: true,
    });
  });

  it("shows bytes that are not UTF-8 as their size only, and copies them as base64", () => {
    const data = new Uint8Array([0, 255, 1, 254]);
    expect(showValue(SecretType.OPAQUE, data)).toEqual({ kind: "binary", size: 4 });
    expect(clipboardText(data)).toEqual({ text: "AP8B/g==", base64: true });
    expect(clipboardText(bytes("é"))).toEqual({ text: "é", base64: false });
  });
});
