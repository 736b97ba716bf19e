import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { crc32 } from "node:zlib";
import { toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  EphemeralAction,
  ListAuditEventsResponseSchema,
  Role,
  SecretType,
  TokenFormat,
} from "@coffer/api";
import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey } from "../crypto/key-ring.ts";
import { generateScalewayKey, generateToken } from "../crypto/tokens.ts";
import { rowsOf } from "../db/raw-sql.ts";
import { secretVersions } from "../db/schema.ts";
import { createTestToken } from "../testing/backends.ts";
import { type Protocol, type SecretClient, secretClient } from "../testing/clients.ts";
import { startOidcIssuer, trustTestIssuer } from "../testing/oidc-issuer.ts";
import { bytesIn, outcomeOf, serverBackends, type TestServer } from "../testing/rpc-servers.ts";

/**
 * The leak scan (issue 3, item 8; SPEC section 4): a full scenario with
 * marked payloads and tokens, including refused and failing calls that carry
 * payloads, then a search of everything the server wrote or said for those
 * bytes, in every encoding a careless line could use: the logs (at trace
 * level), the JSON-lines audit copy, every audit_events row, the audit list
 * of the admin API, and every error a client received.
 */

const RUN = randomBytes(6).toString("hex");
const mark = (n: number) => `LEAK${RUN}MARK${n}Z`;
const utf8 = (s: string) => new TextEncoder().encode(s);
const PROTOCOLS: Protocol[] = ["grpc", "connect", "grpc-web"];

/**
 * The ways a byte string can show up in text: as itself, in hex, in base64
 * (both alphabets) at each of the three alignments it can have inside a
 * longer encoded string.
 */
function needlesOf(name: string, bytes: Uint8Array): { name: string; text: string }[] {
  const b = Buffer.from(bytes);
  const out = [
    { name: `${name} (hex)`, text: b.toString("hex") },
    { name: `${name} (HEX)`, text: b.toString("hex").toUpperCase() },
    { name: `${name} (base64)`, text: b.toString("base64") },
  ];
  for (let k = 0; k < 3; k++) {
    const rest = b.subarray(k);
    const whole = rest.subarray(0, rest.length - (rest.length % 3));
    const core = whole.toString("base64");
    out.push({ name: `${name} (base64 at ${k})`, text: core });
    out.push({ name: `${name} (base64url at ${k})`, text: whole.toString("base64url") });
  }
  if (/^[\x20-\x7e]+$/.test(b.toString("latin1"))) {
    out.push({ name: `${name} (text)`, text: b.toString("latin1") });
  }
  return out.filter((n) => n.text.length >= 16);
}

/** Which needles occur in which haystacks (names only: a failure must not print a secret). */
function hits(
  haystacks: Record<string, string>,
  needles: { name: string; text: string }[],
): string[] {
  const found: string[] = [];
  for (const [where, text] of Object.entries(haystacks)) {
    for (const n of needles) if (text.includes(n.text)) found.push(`${n.name} in ${where}`);
  }
  return found;
}

describe.each(serverBackends)("leak scan on $name", (backend) => {
  let running: TestServer;
  let dir: string;
  let auditFile: string;
  const logged: string[] = [];
  const received: string[] = [];
  const needles: { name: string; text: string }[] = [];
  /** Payloads that must never show, and tokens that must never show. */
  const secretPayload = (name: string, bytes: Uint8Array) => {
    needles.push(...needlesOf(name, bytes));
    return bytes;
  };
  const secretToken = (name: string, value: string) => {
    needles.push({ name: `${name} (value)`, text: value });
    needles.push({ name: `${name} (body)`, text: value.slice("coffer_".length, 50) });
    return value;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "coffer-leak-scan-"));
    auditFile = path.join(dir, "audit.jsonl");
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logged.push(String(chunk));
        done();
      },
    });
    // Plain pino, without the production logger's redaction: the code must
    // not log secrets in the first place.
    const logger = pino({ level: "trace" }, sink);
    const bootstrap = secretToken("bootstrap token", generateToken().value);
    const masterKey = generateKey();
    needles.push(...needlesOf("master key", masterKey));
    running = await backend.start(
      {
        logLevel: "debug",
        auditLog: auditFile,
        bootstrapToken: bootstrap,
        masterKeys: `test-1:${masterKey.toString("base64")}`,
      },
      logger,
    );
  }, 180_000);
  afterAll(async () => {
    await running?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("finds no payload or token byte in logs, audit events, audit log or errors", {
    timeout: 180_000,
  }, async () => {
    const { domain } = running.server;
    const db = domain.regions.resolve("").db;
    let n = 0;
    const protocol = () => PROTOCOLS[n++ % PROTOCOLS.length] as Protocol;
    /** Every call goes through here: errors are kept for the scan, and counted. */
    let calls = 0;
    const call = async <T>(p: Promise<T>, want: string): Promise<T | undefined> => {
      calls++;
      const got = await outcomeOf(p);
      if (got.error !== undefined) {
        received.push(got.error.rawMessage, got.error.message);
        got.error.metadata.forEach((v, k) => {
          received.push(`${k}: ${v}`);
        });
      }
      expect(got.code, got.message).toBe(want);
      return got.response;
    };

    // Tokens: the bootstrap admin's, one made through the admin API (its
    // value comes back once), stored ones, and ones that are refused.
    const adminApi = running.adminClient(protocol(), running.adminToken);
    const project = await call(adminApi.createProject({ name: "leak scan" }), "OK");
    const P = project?.project?.id ?? "";
    const created = await call(
      adminApi.createToken({
        name: "scanner",
        grants: [{ projectId: P, role: Role.FULL_ACCESS, pathPrefix: "/" }],
        expiresAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
      }),
      "OK",
    );
    const full = secretToken("created token", created?.value ?? "");
    const reader = secretToken(
      "reader token",
      (await createTestToken(domain, [{ projectId: P, role: "read_only", pathPrefix: "/" }])).value,
    );
    const doomed = await call(
      adminApi.createToken({
        name: "doomed",
        grants: [{ projectId: P, role: Role.FULL_ACCESS, pathPrefix: "/" }],
      }),
      "OK",
    );
    const revoked = secretToken("revoked token", doomed?.value ?? "");
    await call(adminApi.revokeToken({ tokenId: doomed?.token?.id ?? "" }), "OK");
    const unknown = secretToken("unknown token", generateToken().value);
    // A Scaleway-style secret key, used in capitals too, and an unknown one.
    const scwCreated = await call(
      adminApi.createToken({
        name: "scaleway",
        grants: [{ projectId: P, role: Role.FULL_ACCESS, pathPrefix: "/" }],
        format: TokenFormat.SCALEWAY,
      }),
      "OK",
    );
    const scw = secretToken("scaleway secret key", scwCreated?.value ?? "");
    secretToken("scaleway secret key (capitals)", scw.toUpperCase());
    const unknownScw = secretToken("unknown scaleway secret key", generateScalewayKey().value);
    const malformed = secretToken("malformed token", `coffer_${mark(0)}${"x".repeat(20)}`);
    await call(adminApi.listTokens({ projectId: P, includeInactive: true }), "OK");

    const c = (token?: string) => running.client(protocol(), token);
    // A token sent under another scheme is still a token.
    const wrongScheme = secretClient({
      url: `http://127.0.0.1:${running.server.httpPort}`,
      protocol: "connect",
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Token ${full}`);
          return next(req);
        },
      ],
    });

    // Payloads, text and binary.
    const opaque = secretPayload("opaque payload", utf8(`opaque ${mark(1)} end`));
    const kv = secretPayload("key-value payload", utf8(JSON.stringify({ password: mark(2) })));
    const basic = secretPayload(
      "basic payload",
      utf8(JSON.stringify({ username: "u", password: mark(3) })),
    );
    const binary = secretPayload("binary payload", randomBytes(48));
    const once = secretPayload("single-access payload", utf8(`once ${mark(4)}`));

    const made = async (
      client: SecretClient,
      name: string,
      type: SecretType,
      data: Uint8Array,
      extra = {},
    ) => {
      const r = await call(
        client.createSecret({
          projectId: P,
          path: "/prod",
          name,
          type,
          firstVersion: { data },
          ...extra,
        }),
        "OK",
      );
      return r?.secret?.id ?? "";
    };
    const opaqueId = await made(c(full), "opaque", SecretType.OPAQUE, opaque);
    const kvId = await made(c(full), "kv", SecretType.KEY_VALUE, kv);
    const basicId = await made(c(running.adminToken), "basic", SecretType.BASIC_CREDENTIALS, basic);
    const binaryId = await made(c(full), "binary", SecretType.OPAQUE, binary);
    const onceId = await made(c(full), "once", SecretType.OPAQUE, once, {
      ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
    });

    // Reads that return payloads, over every protocol.
    for (const id of [opaqueId, kvId, basicId, binaryId, opaqueId, kvId]) {
      const got = await call(c(full).accessSecretVersion({ secretId: id, revision: "1" }), "OK");
      expect(bytesIn(got).length).toBe(1);
    }
    await call(
      c(full).accessSecretVersionByPath({
        projectId: P,
        path: "/prod",
        name: "basic",
        revision: "latest_enabled",
      }),
      "OK",
    );
    await call(c(full).accessSecretVersion({ secretId: onceId, revision: "1" }), "OK");
    await call(
      c(full).accessSecretVersion({ secretId: onceId, revision: "1" }),
      "FAILED_PRECONDITION",
    );
    await call(c(full).createSecretVersion({ secretId: kvId, data: kv, enabled: false }), "OK");
    await call(
      c(full).accessSecretVersion({ secretId: kvId, revision: "2" }),
      "FAILED_PRECONDITION",
    );
    await call(c(reader).getSecretVersion({ secretId: kvId, revision: "1" }), "OK");
    await call(c(scw).accessSecretVersion({ secretId: opaqueId, revision: "1" }), "OK");
    await call(c(scw.toUpperCase()).listSecrets({ projectId: P }), "OK");
    await call(c(reader).listSecrets({ projectId: P }), "OK");

    // Refused calls that carry payloads.
    const refusedPayload = (n: number) =>
      secretPayload(`refused payload ${n}`, utf8(mark(100 + n)));
    await call(
      c(reader).createSecretVersion({ secretId: kvId, data: refusedPayload(1) }),
      "PERMISSION_DENIED",
    );
    await call(
      c(reader).accessSecretVersion({ secretId: kvId, revision: "1" }),
      "PERMISSION_DENIED",
    );
    for (const client of [c(), c(revoked), c(unknown), c(unknownScw), c(malformed), wrongScheme]) {
      await call(
        client.createSecretVersion({ secretId: opaqueId, data: refusedPayload(2) }),
        "UNAUTHENTICATED",
      );
      await call(
        client.accessSecretVersion({ secretId: opaqueId, revision: "1" }),
        "UNAUTHENTICATED",
      );
    }
    await call(
      c(full).createSecret({
        projectId: randomUUID(),
        name: "elsewhere",
        firstVersion: { data: refusedPayload(3) },
      }),
      "NOT_FOUND",
    );
    await call(
      c(full).createSecretVersion({ secretId: opaqueId, data: refusedPayload(4), etag: '"0"' }),
      "ABORTED",
    );
    await call(
      c(full).createSecretVersion({
        secretId: opaqueId,
        data: refusedPayload(5),
        dataCrc32: (crc32(refusedPayload(5)) + 1) >>> 0,
      }),
      "INVALID_ARGUMENT",
    );
    // Payloads that break their type: the message names the field, never the value.
    const badKv = async (name: string, type: SecretType, data: Uint8Array) =>
      call(
        c(full).createSecret({ projectId: P, name, type, firstVersion: { data } }),
        "INVALID_ARGUMENT",
      );
    await badKv("bad-json", SecretType.KEY_VALUE, refusedPayload(6));
    await badKv(
      "truncated-json",
      SecretType.KEY_VALUE,
      secretPayload("truncated json", utf8(`{"a": "${mark(7)}"`)),
    );
    await badKv(
      "nested",
      SecretType.KEY_VALUE,
      secretPayload("nested value", utf8(JSON.stringify({ k: { x: mark(8) } }))),
    );
    await badKv(
      "db",
      SecretType.DATABASE_CREDENTIALS,
      secretPayload(
        "database credentials",
        utf8(
          JSON.stringify({
            engine: "postgres",
            username: "u",
            password: mark(9),
            host: "h",
            dbname: "d",
            port: mark(10),
          }),
        ),
      ),
    );
    await badKv(
      "cert",
      SecretType.CERTIFICATE,
      secretPayload("certificate", utf8(`-----BEGIN CERTIFICATE-----\n${mark(11)}\n`)),
    );
    await badKv(
      "ssh",
      SecretType.SSH_KEY,
      secretPayload("ssh key", utf8(JSON.stringify({ private_key: mark(12) }))),
    );
    await call(
      c(full).createSecretVersion({
        secretId: opaqueId,
        data: secretPayload(
          "oversized payload",
          utf8(mark(13).repeat(Math.ceil(65_537 / mark(13).length))),
        ),
      }),
      "INVALID_ARGUMENT",
    );
    // Larger than any request the servers read, over each protocol.
    const huge = secretPayload(
      "huge payload",
      utf8(mark(14).repeat(Math.ceil(600_000 / mark(14).length))),
    );
    for (let i = 0; i < 3; i++) {
      const got = await outcomeOf(c(full).createSecretVersion({ secretId: opaqueId, data: huge }));
      calls++;
      expect(got.code).not.toBe("OK");
      if (got.error) received.push(got.error.rawMessage, got.error.message);
    }

    // A payload-carrying call that fails inside the database: INTERNAL, its
    // cause logged (with the failing query) but never the payload.
    await db.execute(
      sql.raw(`create function test_explode() returns trigger language plpgsql as $$
        begin raise exception 'injected failure'; end $$`),
    );
    await db.execute(
      sql.raw(`create trigger test_explode before insert on secret_versions for each row
        when (new.description = 'explode') execute function test_explode()`),
    );
    await call(
      c(full).createSecretVersion({
        secretId: opaqueId,
        data: refusedPayload(15),
        description: "explode",
      }),
      "INTERNAL",
    );

    // Workload identity: JWTs (accepted and refused) and the token exchanged
    // for one. A JWT's signature is what makes it usable: it must never show.
    const oidc = await startOidcIssuer();
    try {
      await trustTestIssuer(adminApi, oidc, {
        grants: [{ projectId: P, role: Role.FULL_ACCESS, pathPrefix: "/" }],
      });
      const jwt = (name: string, value: string) => {
        needles.push({ name: `${name} (signature)`, text: value.split(".")[2] ?? value });
        return value;
      };
      const exchanged = await call(
        running
          .authClient(protocol())
          .exchangeToken({ jwt: jwt("accepted JWT", await oidc.sign()) }),
        "OK",
      );
      const workload = secretToken("exchanged token", exchanged?.value ?? "");
      await call(c(workload).accessSecretVersion({ secretId: opaqueId, revision: "1" }), "OK");
      for (const [name, refused] of [
        ["expired JWT", await oidc.sign({ expiresInS: -120 })],
        ["JWT of no binding", await oidc.sign({ claims: { sub: "nobody" } })],
        ["JWT of another audience", await oidc.sign({ claims: { aud: "elsewhere" } })],
      ] as const) {
        await call(
          running.authClient(protocol()).exchangeToken({ jwt: jwt(name, refused) }),
          "UNAUTHENTICATED",
        );
      }
    } finally {
      await oidc.close();
    }

    // The audit list, as the admin API shows it.
    const events = await call(adminApi.listAuditEvents({ pageSize: 1000 }), "OK");
    const listedEvents = events ? toJsonString(ListAuditEventsResponseSchema, events as never) : "";

    // Key material: the master key, and every stored wrapped data key and
    // ciphertext (also as the decimal lists a Buffer or Uint8Array prints as).
    for (const [i, v] of (await db.select().from(secretVersions)).entries()) {
      for (const [what, bytes] of [
        ["wrapped key", v.wrappedKey],
        ["ciphertext", v.ciphertext],
      ] as const) {
        if (bytes === null) continue;
        needles.push(...needlesOf(`${what} ${i}`, bytes));
        needles.push({
          name: `${what} ${i} (decimal)`,
          text: Array.from(bytes.subarray(0, 16)).join(","),
        });
      }
    }
    const rows = rowsOf<{ j: string }>(
      await db.execute(sql`select row_to_json(a)::text as j from audit_events a`),
    ).map((r) => r.j);
    await running.stop();
    const auditLog = await readFile(auditFile, "utf8");

    // The scan looks where it should: each place holds what the scenario put there.
    const logText = logged.join("");
    // Each call has its event, its audit line and its log line, but for the
    // three oversized requests that the transports refuse before any handler,
    // and the twelve refused without a valid token: those are aggregated per
    // token prefix (or none), method and minute, so the three callers without
    // a well-formed token share one event and one log line per method, and a
    // Scaleway-style secret key is counted under the prefix "uuid".
    // (A refused ExchangeToken is an event of its own, with its reason: it is
    // refused by its handler, not for want of a token. The two AdminService
    // calls of trustTestIssuer were made outside `call`.)
    const refused = rows.filter(
      (r) => r.includes('"outcome":"UNAUTHENTICATED"') && !r.includes("AuthService/ExchangeToken"),
    );
    expect(rows.length - refused.length).toBe(calls - 3 - 12 + 2);
    expect(refused.length).toBeGreaterThanOrEqual(8);
    expect(refused.length).toBeLessThanOrEqual(12);
    expect(refused.filter((r) => r.includes('"token_prefix":"uuid"')).length).toBeGreaterThan(0);
    // An aggregated event that counted more than one call gets a second line with its final count.
    const auditLines = auditLog.trim().split("\n").length;
    expect(auditLines).toBeGreaterThanOrEqual(rows.length);
    expect(auditLines).toBeLessThanOrEqual(rows.length + 2);
    expect(logText.match(/"msg":"call( failed)?"/g)).toHaveLength(rows.length);
    expect(logText).toContain("internal error");
    expect(logText).toContain("injected failure");
    expect(received.length).toBeGreaterThan(30);
    // The list call's own event is written after it lists.
    expect(events?.events).toHaveLength(rows.length - 1);
    // ... and would find a payload or token if one were there.
    const canary = Buffer.from(binary).toString("base64");
    expect(hits({ canary: `x${canary}x` }, needles)).toContain("binary payload (base64) in canary");
    expect(hits({ canary: full }, needles)).toContain("created token (value) in canary");

    expect(
      hits(
        {
          logs: logText,
          "audit log": auditLog,
          "audit_events rows": rows.join("\n"),
          "admin audit list": listedEvents,
          "client errors": received.join("\n"),
        },
        needles,
      ),
    ).toEqual([]);
    // Nor any binary at all in the logs: a Buffer, or the replacement
    // character that bytes printed as text turn into.
    expect(logged.filter((l) => l.includes('"type":"Buffer"') || l.includes("\ufffd"))).toEqual([]);
  });
});
