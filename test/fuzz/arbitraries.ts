import { generateKeyPairSync, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { SecretType } from "@coffer/api";
import fc from "fast-check";

/**
 * Generators for every field rule of SPEC section 2 and
 * packages/server/src/domain/validation.ts, limits and payload-types: each
 * mixes values well inside a rule with values at and one past every
 * boundary, and plain garbage.
 */

/**
 * Put into every payload the fuzz sends: an error message or a log line that
 * holds it has leaked payload bytes. Never used in names, paths or JSON keys,
 * which the server may echo by design.
 */
export const PAYLOAD_MARKER = `pm${randomBytes(8).toString("hex")}`;

const NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
/** Characters a name (or path segment) must refuse. */
const BAD_NAME_CHARS = [" ", "/", "\\", "é", "\u0000", "\n", "😀", ":", "*", "\u200b", "\ud800"];

const nameChars = (min: number, max: number) =>
  fc
    .array(fc.constantFrom(...NAME_ALPHABET), { minLength: min, maxLength: max })
    .map((cs) => cs.join(""));

/** Names that follow the rule: 1-255 characters of [A-Za-z0-9._-], not "." or "..". */
export const validName = fc
  .oneof(nameChars(1, 20), fc.constantFrom("a", "x".repeat(255), "...", "-", "_", "a.b"))
  .filter((n) => n !== "." && n !== "..");

/** Names that break the rule, at every edge of it. */
export const badName = fc.oneof(
  fc.constantFrom("", ".", "..", "x".repeat(256), "é".repeat(255), "a b", "a/b"),
  fc
    .tuple(nameChars(0, 10), fc.constantFrom(...BAD_NAME_CHARS), nameChars(0, 10))
    .map(([a, c, b]) => a + c + b),
  nameChars(256, 300),
);

export const anyName = fc.oneof(validName, badName, fc.string({ maxLength: 40 }));

/** `/` followed by segments summing to exactly `length` characters. */
function pathOfLength(length: number): string {
  const segments: string[] = [];
  let remaining = length;
  while (remaining > 201) {
    segments.push("p".repeat(200));
    remaining -= 201;
  }
  segments.push("q".repeat(remaining - 1));
  return `/${segments.join("/")}`;
}

const segmentsPath = (n: number) => `/${Array.from({ length: n }, (_, i) => `s${i}`).join("/")}`;

/** Folder paths that follow the rule (some with a trailing slash, which is removed). */
export const validPath = fc.oneof(
  fc.constantFrom("", "/", "/a/", segmentsPath(32), pathOfLength(1024), `${pathOfLength(1024)}/`),
  fc.array(validName, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`),
);

/** Paths that break the rule: relative, empty segments, too deep, too long, bad segments. */
export const badPath = fc.oneof(
  fc.constantFrom(
    "a",
    "a/b",
    "//",
    "/a//b",
    "/a//",
    "/.",
    "/a/..",
    segmentsPath(33),
    pathOfLength(1025),
    `/${"x".repeat(256)}`,
  ),
  badName.filter((n) => n !== "").map((n) => `/ok/${n.replaceAll("/", "%")}`),
);

export const anyPath = fc.oneof(validPath, badPath, fc.string({ maxLength: 40 }));

/** A tag that follows the rule: 1-128 printable code points, not only whitespace. */
export const validTag = fc.oneof(
  fc.constantFrom("env:prod", "a", "t".repeat(128), "😀".repeat(128), "Ünïcode tag ✓", " a "),
  nameChars(1, 12),
);

/** A tag that breaks it: empty, too long (in code points), control characters, only whitespace. */
export const badTag = fc.constantFrom(
  "",
  " ",
  "\t \u3000",
  "t".repeat(129),
  "😀".repeat(129),
  "a\u0000b",
  "a\nb",
  "\u007f",
  "x\u0085",
  "\u009f",
);

const distinctTags = (n: number) => Array.from({ length: n }, (_, i) => `tag-${i}`);

/** Tag lists at and around 64 distinct tags, with duplicates folded. */
export const validTags = fc.oneof(
  fc.array(validTag, { maxLength: 6 }),
  fc.constantFrom(distinctTags(64), [...distinctTags(64), "tag-0", "tag-63"]),
);
export const badTags = fc.oneof(
  fc.constant(distinctTags(65)),
  fc
    .tuple(fc.array(validTag, { maxLength: 3 }), badTag, fc.array(validTag, { maxLength: 3 }))
    .map(([a, t, b]) => [...a, t, ...b]),
);
export const anyTags = fc.oneof(validTags, badTags);

/**
 * Characters a free-text field must be ready for: NUL (which Postgres text
 * cannot hold at all), other C0 and C1 controls, DEL, line and paragraph
 * separators, a byte-order mark, and lone surrogates (no UTF-8 form).
 * fc.string() alone draws only printable ASCII, which is how a NUL in a
 * description once reached the database as INTERNAL.
 */
export const CONTROL_CHARS = [
  "\u0000",
  "\u0001",
  "\t",
  "\n",
  "\r",
  "\u001b",
  "\u001f",
  "\u007f",
  "\u0085",
  "\u009f",
  "\u2028",
  "\ufeff",
  "\ud800",
  "\udfff",
];

/** Text with one control character somewhere in it (at the start, the end or inside). */
export const controlText = fc
  .tuple(
    fc.string({ maxLength: 12 }),
    fc.constantFrom(...CONTROL_CHARS),
    fc.string({ maxLength: 12 }),
  )
  .map(([a, c, b]) => a + c + b);

/** Any string, printable or not: full Unicode, controls, and the NUL. */
export const anyText = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ maxLength: 20, unit: "binary" }),
  controlText,
);

/** Descriptions at and around 1024 code points (astral characters are two UTF-16 units each). */
export const validDescription = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ maxLength: 30, unit: "grapheme" }),
  fc.constantFrom(
    "",
    "a\nb\tc",
    "\u0085\u2028",
    "d".repeat(1024),
    "🔐".repeat(1024),
    `${"é".repeat(1023)}x`,
  ),
);
/**
 * Descriptions refused: too long, or holding a NUL. (A lone surrogate is
 * refused too, but not always as a description error: binary protobuf turns
 * it into U+FFFD on the way, and JSON decoding refuses it first.)
 */
export const badDescription = fc.oneof(
  fc.constantFrom("d".repeat(1025), "🔐".repeat(1025), "\u0000", "a\u0000b"),
  fc
    .tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }))
    .map(([a, b]) => `${a}\u0000${b}`),
);
export const anyDescription = fc.oneof(validDescription, badDescription);

/** UUIDs in canonical form, in either case. */
export const validUuid = fc.oneof(
  fc.uuid(),
  fc.uuid().map((u) => u.toUpperCase()),
);

/** Near-UUIDs and garbage. */
export const badUuid = fc.oneof(
  fc.constantFrom("", "not-a-uuid", "0", "x".repeat(5000)),
  fc.uuid().map((u) => u.slice(0, 35)),
  fc.uuid().map((u) => `${u}0`),
  fc.uuid().map((u) => u.replaceAll("-", "")),
  fc.uuid().map((u) => `g${u.slice(1)}`),
  fc.uuid().map((u) => ` ${u}`),
  fc.uuid().map((u) => `{${u}}`),
);

/** Revision selectors at and past every edge. */
export const validRevision = fc.oneof(
  fc.constantFrom("latest", "latest_enabled", "1", "2", "2147483647"),
  fc.integer({ min: 1, max: 2 ** 31 - 1 }).map(String),
);
export const badRevision = fc.oneof(
  fc.constantFrom(
    "",
    "0",
    "01",
    "-1",
    "+1",
    "1.0",
    " 1",
    "1 ",
    "2147483648",
    "9999999999999999",
    "99999999999999999999",
    "LATEST",
    "latest ",
    "1e3",
    "0x10",
  ),
  fc
    .string({ minLength: 1, maxLength: 12 })
    .filter((s) => !/^([1-9][0-9]*|latest|latest_enabled)$/.test(s)),
);
export const anyRevision = fc.oneof(validRevision, badRevision);

/** Page numbers and sizes at every edge (0 means default; 1000 and 1,000,000 are the caps). */
export const anyPage = fc.oneof(
  fc.constantFrom(0, 1, 2, 1_000_000, 1_000_001, 2 ** 31, 2 ** 32 - 1),
  fc.nat({ max: 5000 }),
);
export const anyPageSize = fc.oneof(
  fc.constantFrom(0, 1, 999, 1000, 1001, 2 ** 32 - 1),
  fc.nat({ max: 2000 }),
);

/** An enum value: a defined one, or out of range (protobuf enums are open: the server sees the number). */
export const anyEnum = (max: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max }) },
    { weight: 1, arbitrary: fc.constantFrom(max + 1, -1, 2 ** 31 - 1, -(2 ** 31), 100) },
  );

export const anyRegion = fc.oneof(
  { weight: 6, arbitrary: fc.constant("") },
  { weight: 2, arbitrary: fc.constant("local") },
  { weight: 1, arbitrary: fc.constantFrom("LOCAL", "mars", "local ", "x".repeat(3000)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);

const SECONDS_PER_YEAR = 365n * 24n * 3600n;
const durationSeconds = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 59n, SECONDS_PER_YEAR - 1n, SECONDS_PER_YEAR, SECONDS_PER_YEAR + 1n),
  fc.constantFrom(-1n, 2n ** 62n, -(2n ** 62n), 315_576_000_000n, 315_576_000_001n),
  fc.bigInt({ min: 0n, max: SECONDS_PER_YEAR * 2n }),
);
const durationNanos = fc.oneof(
  fc.constantFrom(0, 1, 500_000, 999_999_999),
  fc.constantFrom(1_000_000_000, -1, 2 ** 31 - 1),
);
export const anyDuration = fc.record({ seconds: durationSeconds, nanos: durationNanos });

/** An ephemeral policy at and around its edges; undefined: none. */
export const anyPolicy = fc.option(
  fc.record(
    {
      timeToLive: anyDuration,
      expiresOnceAccessed: fc.boolean(),
      action: anyEnum(2),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined, freq: 2 },
);

/** A timestamp relative to now, at and around "1 second to 365 days ahead", plus absurd ones. */
export const anyTimestamp = fc.oneof(
  fc
    .constantFrom(-3600, -1, 0, 0.5, 1.5, 60, 365 * 86400 - 10, 365 * 86400 + 10, 400 * 86400)
    .map((offset) => {
      const ms = Date.now() + offset * 1000;
      return {
        seconds: BigInt(Math.floor(ms / 1000)),
        nanos: Math.floor(ms % 1000) * 1_000_000,
      };
    }),
  fc.record({
    // Around the edges of years 1 to 9999, all the database stores: the last
    // second of year 9999 (with 999,999,999 nanos it rounds into year 10000),
    // year 10000, the second before year 1, and absurd ones.
    seconds: fc.constantFrom(
      0n,
      -1n,
      253_402_200_000n,
      253_402_300_799n,
      253_402_300_800n,
      -62_135_596_801n,
      2n ** 62n,
      -(2n ** 62n),
    ),
    nanos: fc.constantFrom(0, 999_999_999, 1_000_000_000, -1),
  }),
);

// --- payloads --------------------------------------------------------

const utf8 = (s: string) => Buffer.from(s, "utf8");
const filled = (size: number) => {
  const out = Buffer.alloc(size, PAYLOAD_MARKER);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
};

/** A PKCS#8 PEM private key, valid for certificate and ssh_key secrets. */
const PEM_KEY = generateKeyPairSync("ed25519").privateKey.export({
  type: "pkcs8",
  format: "pem",
}) as string;

/** Payloads valid for each type. */
export function validPayload(type: SecretType): fc.Arbitrary<Uint8Array> {
  const v = fc.constantFrom(PAYLOAD_MARKER, `${PAYLOAD_MARKER}-x`);
  switch (type) {
    case SecretType.CERTIFICATE:
      return fc.constant(utf8(PEM_KEY));
    case SecretType.KEY_VALUE:
      return fc.oneof(
        fc.constant(utf8("{}")),
        v.map((m) => utf8(JSON.stringify({ token: m, n: 1, ok: true }))),
        fc.constant(filledJson(65_536)),
      );
    case SecretType.BASIC_CREDENTIALS:
      return v.map((m) => utf8(JSON.stringify({ username: "u", password: m })));
    case SecretType.DATABASE_CREDENTIALS:
      return fc
        .tuple(
          v,
          fc.constantFrom("postgres", "mysql", "other"),
          fc.constantFrom("0", "5432", "65535"),
        )
        .map(([m, engine, port]) =>
          utf8(
            JSON.stringify({ engine, username: "u", password: m, host: "h", dbname: "d", port }),
          ),
        );
    case SecretType.SSH_KEY:
      return fc.constant(utf8(JSON.stringify({ ssh_private_key: PEM_KEY })));
    default:
      return fc.oneof(
        fc.constantFrom(1, 2, 1024, 65_535, 65_536).map(filled),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
      );
  }
}

/** `{"v":"<marker>..."}` of exactly `size` bytes. */
function filledJson(size: number): Uint8Array {
  const overhead = '{"v":""}'.length;
  return utf8(
    JSON.stringify({ v: Buffer.alloc(size - overhead, PAYLOAD_MARKER).toString("latin1") }),
  );
}

/** Payloads every type refuses: empty, or past 64 KiB. */
const badSize = fc.constantFrom(0, 65_537, 131_072).map(filled);

/** Bytes that are not UTF-8, around a marker. */
const notUtf8 = fc
  .constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82])
  .map((bad) => Buffer.concat([utf8(`{"v":"${PAYLOAD_MARKER}`), Buffer.from(bad), utf8('"}')]));

/** Payloads the type refuses (for opaque, only the size rule applies). */
export function badPayload(type: SecretType): fc.Arbitrary<Uint8Array> {
  const m = PAYLOAD_MARKER;
  const json = (value: unknown) => fc.constant(utf8(JSON.stringify(value)));
  switch (type) {
    case SecretType.OPAQUE:
    case SecretType.UNSPECIFIED:
      return badSize;
    case SecretType.CERTIFICATE:
      return fc.oneof(
        badSize,
        notUtf8,
        fc.constantFrom(
          utf8(m),
          utf8(`-----BEGIN CERTIFICATE-----\n${m}\n-----END CERTIFICATE-----\n`),
          utf8(`-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`),
          utf8(`${PEM_KEY}\n${m}\n`),
          utf8(PEM_KEY.replace("-----END PRIVATE KEY-----", "")),
          utf8(`-----BEGIN ${m}-----\nAAAA\n-----END ${m}-----\n`),
        ),
      );
    case SecretType.KEY_VALUE:
      return fc.oneof(
        badSize,
        notUtf8,
        fc.constantFrom(
          utf8(`{"v": "${m}"`),
          utf8(`["${m}"]`),
          utf8(`"${m}"`),
          utf8("null"),
          utf8("42"),
        ),
        json({ a: m, nested: { v: m } }),
        json({ a: [m] }),
        json({ a: null }),
        fc.constant(filledJson(65_537)),
      );
    case SecretType.BASIC_CREDENTIALS:
      return fc.oneof(
        badSize,
        notUtf8,
        json({ username: "u" }),
        json({ username: "u", password: 42 }),
        json({ username: "u", password: m, pasword: m }),
        json({ username: [m], password: m }),
        fc.constant(utf8(`{"username": "u", "password": "${m}`)),
      );
    case SecretType.DATABASE_CREDENTIALS: {
      const base = {
        engine: "postgres",
        username: "u",
        password: m,
        host: "h",
        dbname: "d",
        port: "5432",
      };
      return fc.oneof(
        badSize,
        notUtf8,
        fc
          .constantFrom("65536", "-1", "", "99999999999999999999", "54 32", "0x10", "١٢٣")
          .map((port) => utf8(JSON.stringify({ ...base, port }))),
        json({ ...base, port: 5432 }),
        fc
          .constantFrom("oracle", "", "Postgres", m)
          .map((engine) => utf8(JSON.stringify({ ...base, engine }))),
        json({ ...base, extra: m }),
        json({ engine: "mysql", password: m }),
      );
    }
    case SecretType.SSH_KEY:
      return fc.oneof(
        badSize,
        notUtf8,
        json({ ssh_private_key: m }),
        json({ ssh_private_key: `${PEM_KEY}${PEM_KEY}` }),
        json({
          ssh_private_key: `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA${m}\n-----END OPENSSH PRIVATE KEY-----\n`,
        }),
        json({
          ssh_private_key:
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        }),
        json({ ssh_private_key: PEM_KEY, comment: m }),
        json({ key: m }),
      );
    default:
      return badSize;
  }
}

/** Any payload for a type: valid, invalid, or random bytes. */
export function anyPayload(type: SecretType): fc.Arbitrary<Uint8Array> {
  return fc.oneof(validPayload(type), badPayload(type), fc.uint8Array({ maxLength: 80 }));
}

/** The CRC-32 field: unset, right, or wrong. */
export function anyCrc(data: Uint8Array): fc.Arbitrary<number | undefined> {
  const right = crc32(data) >>> 0;
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constant(right) },
    { weight: 1, arbitrary: fc.constantFrom((right + 1) >>> 0, 0, 0xffff_ffff) },
  );
}

export const ALL_TYPES = [
  SecretType.OPAQUE,
  SecretType.CERTIFICATE,
  SecretType.KEY_VALUE,
  SecretType.BASIC_CREDENTIALS,
  SecretType.DATABASE_CREDENTIALS,
  SecretType.SSH_KEY,
];
