import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createTestCertificates } from "@coffer/server/testing";

/**
 * The secrets the quickstart walk creates, one per type: what a person types
 * into the type's form, and the payload bytes the server must then hold.
 * Values are random per run, so that a value found in a URL, a storage or a
 * screenshot's text can only have come from this run.
 */

export type Kind =
  | "opaque"
  | "certificate"
  | "key_value"
  | "basic_credentials"
  | "database_credentials"
  | "ssh_key";

/** What the form of each type is filled with. */
export type FormValue =
  | { kind: "opaque"; text: string }
  /** An opaque value imported from a file ("Import from a file"), any bytes. */
  | { kind: "opaque"; file: { name: string; bytes: Buffer } }
  | { kind: "certificate"; pem: string }
  | { kind: "key_value"; rows: [string, string][] }
  | { kind: "basic_credentials"; username: string; password: string }
  | {
      kind: "database_credentials";
      engine: "postgres" | "mysql" | "other";
      host: string;
      port: string;
      dbname: string;
      username: string;
      password: string;
    }
  | { kind: "ssh_key"; sshPrivateKey: string };

/** One secret of the walk. */
export interface Case {
  kind: Kind;
  /** The label of the type in the form. */
  label: RegExp;
  path: string;
  name: string;
  tags: string[];
  protected: boolean;
  /** The ephemeral policy to toggle on, if any. */
  ephemeral?: { singleAccess: true } | { ttl: { amount: number; unit: "hours" | "days" } };
  first: FormValue;
  /** A second version, added from the Versions tab. */
  second: FormValue;
  /** Whether the second version is created enabled (the toggle is on by default). */
  secondEnabled: boolean;
}

/** The payload bytes a form value becomes, as the console encodes it. */
export function payloadOf(value: FormValue): Buffer {
  switch (value.kind) {
    case "opaque":
      return "file" in value ? value.file.bytes : Buffer.from(value.text);
    case "certificate":
      return Buffer.from(value.pem);
    case "key_value":
      return Buffer.from(JSON.stringify(Object.fromEntries(value.rows)));
    case "basic_credentials":
      return Buffer.from(JSON.stringify({ username: value.username, password: value.password }));
    case "database_credentials":
      return Buffer.from(
        JSON.stringify({
          engine: value.engine,
          username: value.username,
          password: value.password,
          host: value.host,
          dbname: value.dbname,
          port: value.port,
        }),
      );
    case "ssh_key":
      return Buffer.from(JSON.stringify({ ssh_private_key: value.sshPrivateKey }));
  }
}

/** The secret parts of a form value: what must never be in a URL or storage. */
export function secretPartsOf(value: FormValue): string[] {
  switch (value.kind) {
    case "opaque":
      return "file" in value ? [value.file.bytes.toString("base64").slice(0, 24)] : [value.text];
    case "certificate":
      return [];
    case "key_value":
      return value.rows.map(([, v]) => v);
    case "basic_credentials":
    case "database_credentials":
      return [value.password];
    case "ssh_key":
      return [value.sshPrivateKey.split("\n")[1] ?? ""];
  }
}

const word = () => randomBytes(9).toString("base64url");

function sshKey(): string {
  return generateKeyPairSync("ed25519").privateKey.export({
    format: "pem",
    type: "pkcs8",
  }) as string;
}

/** The six cases, fresh values each call. */
export function quickstartCases(): Case[] {
  const certs = createTestCertificates();
  const caPem = certs.ca.cert.pem.toString();
  const serverPem = certs.server.cert.pem.toString();
  certs.remove();
  return [
    {
      kind: "opaque",
      label: /^opaque$/i,
      path: "/quickstart/app",
      name: "api-key",
      tags: ["prod", "team-a"],
      protected: false,
      first: { kind: "opaque", text: `opaque-1-${word()}` },
      // Bytes that are not UTF-8 (0xff, 0xfe, NUL...): stored exactly as the file holds them.
      second: {
        kind: "opaque",
        file: {
          name: "api-key.bin",
          bytes: Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x80]), randomBytes(2044)]),
        },
      },
      secondEnabled: true,
    },
    {
      kind: "certificate",
      label: /^certificate$/i,
      path: "/quickstart/tls",
      name: "ca-cert",
      tags: ["tls"],
      protected: true,
      first: { kind: "certificate", pem: caPem },
      second: { kind: "certificate", pem: serverPem },
      secondEnabled: false,
    },
    {
      kind: "key_value",
      label: /^key\s*\/\s*value$/i,
      path: "/quickstart/app",
      name: "settings",
      tags: [],
      protected: false,
      ephemeral: { ttl: { amount: 2, unit: "days" } },
      first: {
        kind: "key_value",
        rows: [
          ["LOG_LEVEL", "debug"],
          ["API_TOKEN", `kv-1-${word()}`],
        ],
      },
      second: { kind: "key_value", rows: [["API_TOKEN", `kv-2-${word()}`]] },
      secondEnabled: true,
    },
    {
      kind: "basic_credentials",
      label: /^basic credentials$/i,
      path: "/quickstart/partners",
      name: "billing-login",
      tags: ["billing"],
      protected: false,
      ephemeral: { singleAccess: true },
      first: { kind: "basic_credentials", username: "billing", password: `pw-1-${word()}` },
      second: { kind: "basic_credentials", username: "billing", password: `pw-2-${word()}` },
      secondEnabled: true,
    },
    {
      kind: "database_credentials",
      label: /^database credentials$/i,
      path: "/quickstart/db",
      name: "orders-db",
      tags: ["db", "prod"],
      protected: true,
      first: {
        kind: "database_credentials",
        engine: "postgres",
        host: "db.internal",
        port: "5432",
        dbname: "orders",
        username: "orders_app",
        password: `db-1-${word()}`,
      },
      second: {
        kind: "database_credentials",
        engine: "postgres",
        host: "db.internal",
        port: "6432",
        dbname: "orders",
        username: "orders_app",
        password: `db-2-${word()}`,
      },
      secondEnabled: true,
    },
    {
      kind: "ssh_key",
      label: /^ssh key$/i,
      path: "/quickstart/deploy",
      name: "deploy-key",
      tags: ["ssh"],
      protected: false,
      first: { kind: "ssh_key", sshPrivateKey: sshKey() },
      second: { kind: "ssh_key", sshPrivateKey: sshKey() },
      secondEnabled: false,
    },
  ];
}
