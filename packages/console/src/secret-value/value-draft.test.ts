import { SecretType } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { parseDotenv } from "../import/dotenv.ts";
import {
  certificateProblem,
  decodeFile,
  emptyDraft,
  encodeDraft,
  fileSizeProblem,
  kindOfSecretType,
  newRow,
  payloadSizeProblem,
  secretTypeOf,
  sshKeyProblem,
  type ValueDraft,
} from "./value-draft.ts";

const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n";

describe("size checks", () => {
  it("refuses a file over 64 KiB by its size, with the numbers", () => {
    expect(fileSizeProblem(65_536)).toBeUndefined();
    expect(fileSizeProblem(65_537)).toBe(
      "This file is 65,537 bytes; the maximum is 64 KiB (65,536 bytes).",
    );
    expect(fileSizeProblem(0)).toBe("This file is empty; a secret value needs 1 to 65,536 bytes.");
  });

  it("refuses a payload of 0 or more than 65,536 bytes", () => {
    expect(payloadSizeProblem(1)).toBeUndefined();
    expect(payloadSizeProblem(65_536)).toBeUndefined();
    expect(payloadSizeProblem(0)).toMatch(/empty/);
    expect(payloadSizeProblem(70_000)).toBe(
      "The value is 70,000 bytes; the maximum is 64 KiB (65,536 bytes).",
    );
  });

  it("counts the encoded bytes, not the characters", () => {
    // 32,769 two-byte characters: 65,538 bytes.
    const draft: ValueDraft = { kind: "opaque", text: "é".repeat(32_769) };
    expect(encodeDraft(draft)).toEqual({
      errors: { data: "The value is 65,538 bytes; the maximum is 64 KiB (65,536 bytes)." },
    });
  });
});

describe("encodeDraft", () => {
  it("encodes opaque text as UTF-8 and an opaque file as its exact bytes", () => {
    expect(text(encodeDraft({ kind: "opaque", text: "pa ss\n" }).bytes)).toBe("pa ss\n");
    const bytes = new Uint8Array([0, 255, 10]);
    expect(encodeDraft({ kind: "opaque", text: "", file: { name: "k.bin", bytes } }).bytes).toBe(
      bytes,
    );
  });

  it("encodes key/value rows as a flat JSON object, skipping the blank row and keeping numbers and booleans", () => {
    const draft: ValueDraft = {
      kind: "key_value",
      rows: [
        newRow("A", "1"),
        newRow("PORT", "5432", "number"),
        newRow("TLS", "true", "boolean"),
        newRow("WAS_NUMBER", "abc", "number"),
        newRow(),
      ],
    };
    expect(text(encodeDraft(draft).bytes)).toBe(
      '{"A":"1","PORT":5432,"TLS":true,"WAS_NUMBER":"abc"}',
    );
  });

  it("refuses a duplicate key and a value without a key, on their rows", () => {
    const a = newRow("A", "1");
    const dup = newRow("A", "2");
    const nokey = newRow("", "x");
    expect(encodeDraft({ kind: "key_value", rows: [a, dup, nokey] })).toEqual({
      errors: {
        [`rows.${dup.id}.key`]: 'The key "A" is already used above; each key may appear once.',
        [`rows.${nokey.id}.key`]: "Enter a key for this value.",
      },
    });
  });

  it("encodes basic and database credentials with exactly the server's fields", () => {
    expect(
      text(encodeDraft({ kind: "basic_credentials", username: "u", password: "p" }).bytes),
    ).toBe('{"username":"u","password":"p"}');
    const db: ValueDraft = {
      kind: "database_credentials",
      engine: "mysql",
      host: "db",
      port: "3306",
      dbname: "app",
      username: "u",
      password: "p",
    };
    expect(JSON.parse(text(encodeDraft(db).bytes) ?? "")).toEqual({
      engine: "mysql",
      username: "u",
      password: "p",
      host: "db",
      dbname: "app",
      port: "3306",
    });
  });

  it("refuses a port that is not digits from 0 to 65535", () => {
    const db = {
      ...(emptyDraft("database_credentials") as Extract<
        ValueDraft,
        { kind: "database_credentials" }
      >),
    };
    for (const port of ["65536", "-1", "54 32", "", "5e3"]) {
      expect(encodeDraft({ ...db, port }).errors).toEqual({
        "data.port": "The port must be a number from 0 to 65535 (digits only).",
      });
    }
    expect(encodeDraft({ ...db, port: "0" }).errors).toEqual({});
    expect(encodeDraft({ ...db, port: "65535" }).errors).toEqual({});
  });

  it("checks PEM text for certificates and SSH keys", () => {
    expect(certificateProblem(CERT + CERT)).toBeUndefined();
    expect(certificateProblem("")).toMatch(/Paste one or more PEM blocks/);
    expect(certificateProblem("hello")).toMatch(/Paste PEM text/);
    expect(certificateProblem(`${CERT}trailing`)).toMatch(/only PEM blocks and whitespace/);
    expect(certificateProblem("-----BEGIN CERTIFICATE-----\nMIIB\n-----END KEY-----")).toMatch(
      /each BEGIN line has its END line/,
    );
    expect(sshKeyProblem(KEY)).toBeUndefined();
    expect(sshKeyProblem(CERT)).toMatch(/not a private key/);
    expect(sshKeyProblem(KEY + KEY)).toMatch(/exactly one private key \(this text holds 2/);
    expect(text(encodeDraft({ kind: "ssh_key", sshPrivateKey: KEY }).bytes)).toBe(
      JSON.stringify({ ssh_private_key: KEY }),
    );
    expect(encodeDraft({ kind: "certificate", pem: "x" }).errors.data).toMatch(/PEM/);
  });
});

describe("decodeFile", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);

  it("reads JSON into the structured forms, and a number port as digits", () => {
    expect(
      decodeFile("basic_credentials", bytes('{"username":"u","password":"p"}'), "c.json"),
    ).toEqual({
      draft: { kind: "basic_credentials", username: "u", password: "p" },
    });
    const db = decodeFile(
      "database_credentials",
      bytes(
        '{"engine":"postgres","host":"h","port":5432,"dbname":"d","username":"u","password":"p"}',
      ),
      "db.json",
    );
    expect(db).toMatchObject({ draft: { engine: "postgres", port: "5432", host: "h" } });
    expect(
      decodeFile("basic_credentials", bytes('{"username":"u","pasword":"p"}'), "c.json"),
    ).toEqual({
      problem: 'The file has a field "pasword"; expected only username, password.',
    });
  });

  it("reads key/value from JSON or .env, and refuses a nested value", () => {
    const fromJson = decodeFile("key_value", bytes('{"A":"1","N":2}'), "kv.json");
    expect("draft" in fromJson && fromJson.draft).toMatchObject({
      rows: [
        { key: "A", value: "1", kind: "string" },
        { key: "N", value: "2", kind: "number" },
      ],
    });
    const fromEnv = decodeFile("key_value", bytes("export A=1\nB='two'\n"), ".env", parseDotenv);
    expect("draft" in fromEnv && fromEnv.draft).toMatchObject({
      rows: [
        { key: "A", value: "1" },
        { key: "B", value: "two" },
      ],
    });
    expect(decodeFile("key_value", bytes('{"a":{"b":1}}'), "kv.json")).toEqual({
      problem:
        'The key "a" holds an object; a key/value secret holds only strings, numbers and booleans.',
    });
  });

  it("reads PEM text, an SSH key file or its JSON, and keeps opaque bytes exactly", () => {
    expect(decodeFile("certificate", bytes(CERT), "c.pem")).toEqual({
      draft: { kind: "certificate", pem: CERT },
    });
    expect(decodeFile("ssh_key", bytes(KEY), "id_ed25519")).toEqual({
      draft: { kind: "ssh_key", sshPrivateKey: KEY },
    });
    expect(
      decodeFile("ssh_key", bytes(JSON.stringify({ ssh_private_key: KEY })), "k.json"),
    ).toEqual({
      draft: { kind: "ssh_key", sshPrivateKey: KEY },
    });
    const raw = new Uint8Array([0xff, 0xfe, 0]);
    expect(decodeFile("opaque", raw, "blob.bin")).toEqual({
      draft: { kind: "opaque", text: "", file: { name: "blob.bin", bytes: raw } },
    });
    expect(decodeFile("certificate", raw, "c.der")).toEqual({
      problem: "This file is not UTF-8 text; a certificate secret is text.",
    });
  });
});

describe("secret types", () => {
  it("maps each kind to the API's enum and back, UNSPECIFIED meaning opaque", () => {
    expect(secretTypeOf("ssh_key")).toBe(SecretType.SSH_KEY);
    expect(kindOfSecretType(SecretType.DATABASE_CREDENTIALS)).toBe("database_credentials");
    expect(kindOfSecretType(SecretType.UNSPECIFIED)).toBe("opaque");
  });
});
