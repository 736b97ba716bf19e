import { SecretType } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { changedNames, childEnv } from "./commands/run-run.ts";
import {
  checkPrefix,
  envName,
  mergeVariables,
  type ReadSecret,
  type Variable,
  variablesOf,
} from "./env-names.ts";
import { CliError, UsageError } from "./errors.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const secret = (name: string, type: SecretType, payload: string, path = "/prod"): ReadSecret => ({
  label: `${path}/${name}`,
  name,
  type,
  bytes: bytes(payload),
});
const pairs = (vs: Variable[]) => vs.map((v) => [v.name, v.value]);

describe("envName (coffer run's variable names)", () => {
  it.each([
    ["db-password", "DB_PASSWORD"],
    ["DB_PASSWORD", "DB_PASSWORD"],
    ["api.key", "API_KEY"],
    ["dbHost", "DBHOST"],
    ["a b\tc", "A_B_C"],
    ["1st-key", "_1ST_KEY"],
    ["9", "_9"],
    ["_x", "_X"],
    ["ünïcode", "_N_CODE"],
  ])("%s -> %s", (text, name) => {
    expect(envName(text)).toBe(name);
  });

  it("puts the prefix first, as given, and only then adds _ before a leading digit", () => {
    expect(envName("db-password", "APP_")).toBe("APP_DB_PASSWORD");
    expect(envName("1st", "APP_")).toBe("APP_1ST");
    expect(envName("1st", "")).toBe("_1ST");
  });

  it("refuses an empty key", () => {
    expect(() => envName("")).toThrow(CliError);
  });

  it("checks --prefix against the name rule, naming the flag", () => {
    expect(checkPrefix("APP_")).toBe("APP_");
    expect(checkPrefix("_x9")).toBe("_x9");
    for (const bad of ["1APP", "APP-", "A B", ""]) {
      expect(() => checkPrefix(bad)).toThrow(UsageError);
      expect(() => checkPrefix(bad)).toThrow(/--prefix/);
    }
  });
});

describe("variablesOf (what each type becomes)", () => {
  it("an opaque secret is one variable named after the secret, its payload as text", () => {
    expect(pairs(variablesOf(secret("db-password", SecretType.OPAQUE, "s3cr3t\n")))).toEqual([
      ["DB_PASSWORD", "s3cr3t\n"],
    ]);
  });

  it("a certificate is one variable holding the PEM text", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    expect(pairs(variablesOf(secret("tls", SecretType.CERTIFICATE, pem)))).toEqual([["TLS", pem]]);
  });

  it("a key_value secret is one variable per key, named after the key alone; numbers and booleans as JSON", () => {
    const vs = variablesOf(
      secret("cfg", SecretType.KEY_VALUE, '{"region": "eu", "max-retries": 3, "debug": false}'),
      "APP_",
    );
    expect(pairs(vs)).toEqual([
      ["APP_REGION", "eu"],
      ["APP_MAX_RETRIES", "3"],
      ["APP_DEBUG", "false"],
    ]);
    expect(vs[1]?.source).toBe('/prod/cfg (key "max-retries")');
  });

  it("credentials are one variable per field, named after the secret and the field", () => {
    const db = variablesOf(
      secret(
        "orders-db",
        SecretType.DATABASE_CREDENTIALS,
        '{"engine":"postgres","host":"h","port":"5432","dbname":"shop","username":"app","password":"pw"}',
      ),
    );
    expect(pairs(db)).toEqual([
      ["ORDERS_DB_ENGINE", "postgres"],
      ["ORDERS_DB_HOST", "h"],
      ["ORDERS_DB_PORT", "5432"],
      ["ORDERS_DB_DBNAME", "shop"],
      ["ORDERS_DB_USERNAME", "app"],
      ["ORDERS_DB_PASSWORD", "pw"],
    ]);
    const basic = variablesOf(
      secret("smtp", SecretType.BASIC_CREDENTIALS, '{"username":"u","password":"p"}'),
    );
    expect(pairs(basic)).toEqual([
      ["SMTP_USERNAME", "u"],
      ["SMTP_PASSWORD", "p"],
    ]);
  });

  it("an ssh_key is one variable holding the key file, not its JSON", () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    const vs = variablesOf(
      secret("deploy-key", SecretType.SSH_KEY, JSON.stringify({ ssh_private_key: key })),
    );
    expect(pairs(vs)).toEqual([["DEPLOY_KEY", key]]);
  });

  it("refuses binary payloads and NUL characters without quoting the payload", () => {
    const binary: ReadSecret = {
      label: "/prod/blob",
      name: "blob",
      type: SecretType.OPAQUE,
      bytes: new Uint8Array([0xff, 0xfe, 0x41]),
    };
    expect(() => variablesOf(binary)).toThrow(/\/prod\/blob is binary/);
    const nul = secret("x", SecretType.OPAQUE, "top\u0000secret");
    expect(() => variablesOf(nul)).toThrow(/NUL/);
    try {
      variablesOf(secret("kv", SecretType.KEY_VALUE, "not json top-secret"));
      throw new Error("expected a refusal");
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as Error).message).toBe("/prod/kv: its payload is not JSON");
    }
  });
});

describe("mergeVariables (collisions)", () => {
  it("keeps distinct names", () => {
    const merged = mergeVariables([
      ...variablesOf(secret("a", SecretType.OPAQUE, "1")),
      ...variablesOf(secret("b", SecretType.OPAQUE, "2")),
    ]);
    expect([...merged.keys()]).toEqual(["A", "B"]);
  });

  it("refuses two sources of one name, listing both, with exit code 2 and no value", () => {
    const vs = [
      ...variablesOf(secret("db-password", SecretType.OPAQUE, "value-one")),
      ...variablesOf(secret("DB_PASSWORD", SecretType.OPAQUE, "value-two", "/shared")),
      ...variablesOf(
        secret("db", SecretType.BASIC_CREDENTIALS, '{"username":"u","password":"value-three"}'),
      ),
    ];
    try {
      mergeVariables(vs);
      throw new Error("expected a refusal");
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      const e = err as CliError;
      expect(e.exitCode).toBe(2);
      expect(e.message).toBe(
        "two secrets map to the same environment variable: DB_PASSWORD comes from /prod/db-password and from /shared/DB_PASSWORD; DB_PASSWORD comes from /prod/db-password and from /prod/db (field password)",
      );
      expect(e.message).not.toMatch(/value-/);
    }
  });

  it("finds a key of a key_value secret that lands on another secret's name", () => {
    expect(() =>
      mergeVariables([
        ...variablesOf(secret("region", SecretType.OPAQUE, "eu")),
        ...variablesOf(secret("cfg", SecretType.KEY_VALUE, '{"REGION": "us"}')),
      ]),
    ).toThrow('REGION comes from /prod/region and from /prod/cfg (key "REGION")');
  });
});

describe("childEnv", () => {
  const vars = mergeVariables([
    ...variablesOf(secret("db-password", SecretType.OPAQUE, "pw")),
    ...variablesOf(secret("home", SecretType.OPAQUE, "/secret-home")),
  ]);

  it("drops every COFFER_* variable, keeps the others, and lets secrets override them", () => {
    const { env, overridden } = childEnv(
      {
        PATH: "/bin",
        HOME: "/home/me",
        COFFER_TOKEN: "coffer_x",
        COFFER_URL: "http://x",
        COFFER_KEY_FILE: "/k",
      },
      vars,
    );
    expect(env).toEqual({ PATH: "/bin", HOME: "/secret-home", DB_PASSWORD: "pw" });
    expect(overridden).toEqual(["HOME"]);
  });

  it("tells which names changed between two reads", () => {
    const next = mergeVariables([
      ...variablesOf(secret("db-password", SecretType.OPAQUE, "pw2")),
      ...variablesOf(secret("api", SecretType.OPAQUE, "k")),
    ]);
    expect(changedNames(vars, next)).toEqual(["API", "DB_PASSWORD", "HOME"]);
    expect(changedNames(vars, vars)).toEqual([]);
  });
});
