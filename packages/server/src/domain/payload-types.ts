import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { invalid } from "./errors.ts";

/**
 * Payload validation by secret type (SPEC section 2).
 *
 * Invariant: messages thrown from this file name a field and a rule, never a
 * payload byte or value. That is why parser errors (JSON.parse, OpenSSL) are
 * swallowed rather than passed on: they can quote the input. JSON keys are
 * structure, not values, and may be named; a PEM label is named only when it
 * is one of the standard ones ({@link shownLabel}): any other is text of the
 * payload's choosing.
 */

/** The type of a secret, chosen at creation and immutable. */
export type SecretKind =
  | "opaque"
  | "certificate"
  | "key_value"
  | "basic_credentials"
  | "database_credentials"
  | "ssh_key";

/** Every secret type, in the order the spec lists them. */
export const SECRET_KINDS: readonly SecretKind[] = [
  "opaque",
  "certificate",
  "key_value",
  "basic_credentials",
  "database_credentials",
  "ssh_key",
];

/** Whether a string names a secret type. */
export function isSecretKind(value: string): value is SecretKind {
  return (SECRET_KINDS as readonly string[]).includes(value);
}

/** Largest payload, in bytes (64 KiB). */
export const MAX_PAYLOAD_BYTES = 65_536;

/**
 * Checks a version's payload against its secret's type: 1 to 65,536 bytes,
 * then the per-type rule. Throws an `invalid_argument` DomainError naming the
 * field (`data`, or `data.<key>` inside JSON) and the rule.
 */
export function validatePayload(kind: SecretKind, data: Uint8Array, field = "data"): void {
  if (data.byteLength < 1 || data.byteLength > MAX_PAYLOAD_BYTES) {
    throw invalid(field, `must be 1 to ${MAX_PAYLOAD_BYTES} bytes (got ${data.byteLength})`);
  }
  // The union is checked when compiled; a type from elsewhere (a stored row's text) is refused here.
  if (!Object.hasOwn(PAYLOAD_RULES, kind)) {
    throw invalid("type", `is not a known secret type (got ${JSON.stringify(kind)})`);
  }
  PAYLOAD_RULES[kind](data, field);
}

/** A rule for a JSON payload: it must be an object, which `check` then checks. */
const json =
  (check: (object: Record<string, unknown>, field: string) => void) =>
  (data: Uint8Array, field: string): void =>
    check(parseJsonObject(data, field), field);

/** Each type's rule for a payload of an allowed size. */
const PAYLOAD_RULES: Record<SecretKind, (data: Uint8Array, field: string) => void> = {
  opaque: () => {},
  certificate: (data, field) => validateCertificate(decodeUtf8(data, field), field),
  key_value: json(validateKeyValue),
  basic_credentials: json((object, field) =>
    validateStringFields(object, field, "basic_credentials", ["username", "password"]),
  ),
  database_credentials: json(validateDatabaseCredentials),
  ssh_key: json(validateSshKey),
};

function decodeUtf8(data: Uint8Array, field: string): string {
  try {
    // fatal: a replacement character would silently change what is stored
    // versus what is validated.
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw invalid(field, "must be UTF-8 text");
  }
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function parseJsonObject(data: Uint8Array, field: string): Record<string, unknown> {
  const text = decodeUtf8(data, field);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(field, "must be a JSON object (invalid JSON)");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(field, `must be a JSON object (got ${typeName(value)})`);
  }
  return value as Record<string, unknown>;
}

/**
 * `data.port`, or `data["odd key"]` when the key would not read as a field
 * path. Long keys are shortened so the message stays readable.
 */
function keyField(field: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(key)) return `${field}.${key}`;
  const chars = Array.from(key.slice(0, 130));
  return `${field}[${JSON.stringify(chars.length > 64 ? `${chars.slice(0, 64).join("")}...` : key)}]`;
}

// An empty object is accepted: the spec asks for a flat object, not a
// non-empty one, and a secret may legitimately start with no entries.
function validateKeyValue(object: Record<string, unknown>, field: string): void {
  for (const [key, value] of Object.entries(object)) {
    const type = typeName(value);
    if (type !== "string" && type !== "number" && type !== "boolean") {
      throw invalid(keyField(field, key), `must be a string, number or boolean (got ${type})`);
    }
  }
}

/**
 * Checks that an object has exactly the given fields, each a string. Unknown
 * fields are refused so that a typo ("pasword") fails here instead of
 * producing a credential that every consumer reads as missing.
 */
function validateStringFields(
  object: Record<string, unknown>,
  field: string,
  kind: SecretKind,
  names: readonly string[],
): void {
  for (const name of names) {
    const value = Object.hasOwn(object, name) ? object[name] : undefined;
    // "is required" only of a field that is absent: one that is present with
    // the wrong type is there, and saying otherwise sends the user looking
    // for a typo in its name.
    if (value === undefined) throw invalid(`${field}.${name}`, "is required (a string)");
    if (typeof value !== "string") {
      throw invalid(`${field}.${name}`, `must be a string (got ${typeName(value)})`);
    }
  }
  for (const key of Object.keys(object)) {
    if (!names.includes(key)) {
      throw invalid(
        keyField(field, key),
        `is not a field of ${kind} (expected ${names.join(", ")})`,
      );
    }
  }
}

const DATABASE_ENGINES = ["postgres", "mysql", "other"];

function validateDatabaseCredentials(object: Record<string, unknown>, field: string): void {
  validateStringFields(object, field, "database_credentials", [
    "engine",
    "username",
    "password",
    "host",
    "dbname",
    "port",
  ]);
  // Both are strings now; their values are not echoed (they are payload).
  if (!DATABASE_ENGINES.includes(object.engine as string)) {
    throw invalid(`${field}.engine`, `must be one of ${DATABASE_ENGINES.join(", ")}`);
  }
  const port = object.port as string;
  if (!/^[0-9]+$/.test(port) || Number(port) > 65_535) {
    throw invalid(`${field}.port`, "must be a string of digits from 0 to 65535");
  }
}

function validateSshKey(object: Record<string, unknown>, field: string): void {
  validateStringFields(object, field, "ssh_key", ["ssh_private_key"]);
  const keyFieldName = `${field}.ssh_private_key`;
  const blocks = parsePemBlocks(object.ssh_private_key as string, keyFieldName);
  const [block] = blocks;
  if (block === undefined || blocks.length !== 1) {
    throw invalid(
      keyFieldName,
      `must hold exactly one PEM or OpenSSH private key (got ${blocks.length} PEM blocks)`,
    );
  }
  if (block.label === "OPENSSH PRIVATE KEY") {
    checkOpenSshKey(block, keyFieldName);
    return;
  }
  if (!PRIVATE_KEY_LABELS.has(block.label) && block.label !== "ENCRYPTED PRIVATE KEY") {
    throw invalid(
      keyFieldName,
      `must be a PEM or OpenSSH private key (got a PEM block labelled ${shownLabel(block.label)})`,
    );
  }
  checkPemBlock(block, keyFieldName);
}

function validateCertificate(text: string, field: string): void {
  const blocks = parsePemBlocks(text, field);
  if (blocks.length === 0) {
    throw invalid(field, 'must hold one or more PEM blocks ("-----BEGIN CERTIFICATE-----" ...)');
  }
  for (const block of blocks) checkPemBlock(block, field);
}

// --- PEM ---------------------------------------------------------------

interface PemBlock {
  /** 1-based position in the text, for messages. */
  index: number;
  label: string;
  /** The block from BEGIN to END line, as given to OpenSSL. */
  text: string;
  /** The body with RFC 1421 headers removed and whitespace stripped. */
  base64: string;
  /** Legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED`): the body is ciphertext, not DER. */
  legacyEncrypted: boolean;
}

// RFC 7468 label: printable ASCII except "-", single spaces or hyphens inside.
const PEM_LABEL = /^[\x21-\x2c\x2e-\x7e]+(?:[ -][\x21-\x2c\x2e-\x7e]+)*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PRIVATE_KEY_LABELS = new Set([
  "PRIVATE KEY",
  "RSA PRIVATE KEY",
  "EC PRIVATE KEY",
  "DSA PRIVATE KEY",
]);
const PUBLIC_KEY_LABELS = new Set(["PUBLIC KEY", "RSA PUBLIC KEY"]);

/** The RFC 7468 labels (and OpenSSH's), which a message may name. */
const STANDARD_LABELS = new Set([
  ...PRIVATE_KEY_LABELS,
  ...PUBLIC_KEY_LABELS,
  "CERTIFICATE",
  "TRUSTED CERTIFICATE",
  "X509 CRL",
  "CERTIFICATE REQUEST",
  "NEW CERTIFICATE REQUEST",
  "ENCRYPTED PRIVATE KEY",
  "OPENSSH PRIVATE KEY",
  "ATTRIBUTE CERTIFICATE",
  "PKCS7",
  "CMS",
  "DH PARAMETERS",
  "EC PARAMETERS",
]);

/** A label for a message: a standard one as it is, any other not quoted (it is payload text). */
function shownLabel(label: string): string {
  return STANDARD_LABELS.has(label) ? label : "a non-standard label";
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

/**
 * Splits text into PEM blocks, refusing anything but whitespace between them.
 * Messages give block numbers, labels and line numbers, never text.
 */
function parsePemBlocks(text: string, field: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const nonSpace = /\S/g;
  let position = 0;
  for (;;) {
    nonSpace.lastIndex = position;
    const found = nonSpace.exec(text);
    if (found === null) return blocks;
    const start = found.index;
    const index = blocks.length + 1;
    if (!text.startsWith("-----BEGIN ", start)) {
      throw invalid(
        field,
        `must hold only PEM blocks and whitespace (unexpected text on line ${lineOf(text, start)})`,
      );
    }
    const lineEnd = text.indexOf("\n", start) === -1 ? text.length : text.indexOf("\n", start);
    const labelEnd = text.indexOf("-----", start + 11);
    const label = labelEnd === -1 || labelEnd > lineEnd ? "" : text.slice(start + 11, labelEnd);
    if (label.length > 64 || !PEM_LABEL.test(label)) {
      throw invalid(
        field,
        `PEM block ${index} has a malformed BEGIN line (line ${lineOf(text, start)})`,
      );
    }
    if (text.slice(labelEnd + 5, lineEnd).trim() !== "") {
      throw invalid(
        field,
        `PEM block ${index} (${shownLabel(label)}) has text after its BEGIN line (line ${lineOf(text, start)})`,
      );
    }
    const endLine = `-----END ${label}-----`;
    const endStart = text.indexOf("-----END ", lineEnd);
    if (endStart === -1 || !text.startsWith(endLine, endStart)) {
      throw invalid(
        field,
        STANDARD_LABELS.has(label)
          ? `PEM block ${index} (${label}) must end with "${endLine}"`
          : `PEM block ${index} (${shownLabel(label)}) must end with an END line of the same label`,
      );
    }
    position = endStart + endLine.length;
    const { base64, legacyEncrypted } = splitPemBody(text.slice(lineEnd + 1, endStart));
    blocks.push({ index, label, text: text.slice(start, position), base64, legacyEncrypted });
  }
}

/** Separates RFC 1421 headers (`Name: value` lines before a blank line) from the base64. */
function splitPemBody(body: string): { base64: string; legacyEncrypted: boolean } {
  const lines = body.split(/\r?\n/);
  let legacyEncrypted = false;
  if (lines[0]?.includes(":")) {
    let i = 0;
    for (; i < lines.length && (lines[i] ?? "").trim() !== ""; i++) {
      if (/^Proc-Type:\s*4\s*,\s*ENCRYPTED\s*$/i.test(lines[i] ?? "")) legacyEncrypted = true;
    }
    lines.splice(0, i);
  }
  return { base64: lines.join("").replace(/\s+/g, ""), legacyEncrypted };
}

function decodeBase64(block: PemBlock, field: string): Buffer {
  // Buffer.from(..., "base64") skips characters it does not know, so the
  // alphabet is checked first.
  if (block.base64 === "" || !BASE64.test(block.base64)) {
    throw invalid(
      field,
      `PEM block ${block.index} (${shownLabel(block.label)}) does not parse (bad base64)`,
    );
  }
  return Buffer.from(block.base64, "base64");
}

/** Whether bytes are exactly one DER TLV (definite length, nothing after it). */
function isDer(der: Uint8Array): boolean {
  let offset = 1;
  if (((der[0] ?? 0) & 0x1f) === 0x1f) {
    while (offset < der.length && ((der[offset] ?? 0) & 0x80) !== 0) offset++;
    offset++;
  }
  const first = der[offset++];
  if (first === undefined || first === 0x80) return false;
  let length = first;
  if (first > 0x80) {
    const count = first & 0x7f;
    if (count > 4) return false;
    length = 0;
    for (let i = 0; i < count; i++) {
      const byte = der[offset++];
      if (byte === undefined) return false;
      length = length * 256 + byte;
    }
  }
  return offset + length === der.length;
}

/**
 * Checks one block with the parser its label calls for. Encrypted private
 * keys cannot be opened without a passphrase, so only their encoding is
 * checked; labels Node has no parser for (CSRs, CRLs, parameters...) must at
 * least be well-formed DER.
 */
function checkPemBlock(block: PemBlock, field: string): void {
  const der = decodeBase64(block, field);
  let ok: boolean;
  if (block.label === "CERTIFICATE") {
    ok = attempt(() => new X509Certificate(block.text));
  } else if (PRIVATE_KEY_LABELS.has(block.label) && !block.legacyEncrypted) {
    ok = attempt(() => createPrivateKey({ key: block.text, format: "pem" }));
  } else if (PUBLIC_KEY_LABELS.has(block.label)) {
    ok = attempt(() => createPublicKey({ key: block.text, format: "pem" }));
  } else if (block.legacyEncrypted) {
    ok = der.length > 0;
  } else {
    ok = isDer(der);
  }
  if (!ok)
    throw invalid(field, `PEM block ${block.index} (${shownLabel(block.label)}) does not parse`);
}

function attempt(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch {
    return false;
  }
}

// --- OpenSSH -----------------------------------------------------------

const OPENSSH_MAGIC = Buffer.from("openssh-key-v1\0", "latin1");

/**
 * Checks the structure of an `openssh-key-v1` blob (PROTOCOL.key in
 * OpenSSH): magic, cipher, KDF, KDF options, key count, public keys, then
 * the private section, with nothing after it but an AEAD tag. Node cannot read this format,
 * so this is as far as the server can check; for unencrypted keys the two
 * check integers that open the private section must also match.
 */
function checkOpenSshKey(block: PemBlock, field: string): void {
  const blob = decodeBase64(block, field);
  const fail = (why: string) => invalid(field, `is not a valid OpenSSH private key (${why})`);
  if (!blob.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) {
    throw fail('missing "openssh-key-v1" header');
  }
  let offset = OPENSSH_MAGIC.length;
  const uint32 = (): number => {
    if (offset + 4 > blob.length) throw fail("truncated");
    const value = blob.readUInt32BE(offset);
    offset += 4;
    return value;
  };
  const string = (): Buffer => {
    const length = uint32();
    if (offset + length > blob.length) throw fail("truncated");
    const value = blob.subarray(offset, offset + length);
    offset += length;
    return value;
  };
  const cipher = string().toString("latin1");
  const kdf = string().toString("latin1");
  string(); // KDF options: opaque to us.
  if ((cipher === "none") !== (kdf === "none")) throw fail("cipher and KDF disagree");
  const keys = uint32();
  // OpenSSH itself writes exactly one; a small cap keeps a forged count cheap.
  if (keys < 1 || keys > 16) throw fail("bad key count");
  for (let i = 0; i < keys; i++) {
    if (string().length === 0) throw fail("empty public key");
  }
  const privateSection = string();
  // AEAD ciphers (chacha20-poly1305, aes-gcm) append a 16-byte tag after the
  // private section; unencrypted keys end exactly there.
  const trailing = blob.length - offset;
  if (cipher === "none" ? trailing !== 0 : trailing > 16) throw fail("trailing bytes");
  if (privateSection.length === 0 || privateSection.length % 8 !== 0) {
    throw fail("bad private section length");
  }
  if (cipher === "none" && privateSection.readUInt32BE(0) !== privateSection.readUInt32BE(4)) {
    throw fail("check integers differ");
  }
}
