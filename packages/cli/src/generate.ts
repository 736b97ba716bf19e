import { randomInt } from "node:crypto";
import { UsageError } from "./errors.ts";

/**
 * `--generate [LENGTH] [--charset NAME|CHARS]`: a random payload from the
 * OS's CSPRNG (node:crypto), for `coffer secret create` and `coffer version
 * create`. Each character is drawn with crypto.randomInt, which rejects
 * out-of-range draws rather than reducing them modulo the alphabet's size,
 * so every character of the alphabet is equally likely (no modulo bias).
 */

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = LOWER.toUpperCase();
const DIGITS = "0123456789";

/** The named alphabets of `--charset`. */
export const CHARSETS: Readonly<Record<string, string>> = {
  alnum: UPPER + LOWER + DIGITS,
  alpha: UPPER + LOWER,
  numeric: DIGITS,
  hex: "0123456789abcdef",
  base64url: `${UPPER}${LOWER}${DIGITS}-_`,
  // Letters, digits and the ASCII punctuation, less the quotes, backslash
  // and backtick that shells and config formats trip over.
  symbols: `${UPPER}${LOWER}${DIGITS}!#$%&()*+,-./:;<=>?@[]^_{|}~`,
};

export const DEFAULT_LENGTH = 32;
export const MIN_LENGTH = 4;
/** The largest payload the server accepts is 64 KiB; every alphabet is ASCII, one byte a character. */
export const MAX_LENGTH = 65_536;

/** What `--generate` asked for. */
export interface GenerateSpec {
  length: number;
  /** The alphabet's name, or "custom". */
  charsetName: string;
  alphabet: string;
}

/** The flags that give a payload, and --generate's own. */
export interface GenerateValues {
  generate?: string;
  charset?: string;
  "show-generated"?: boolean;
  data?: string;
  "from-file"?: string;
}

/**
 * Reads `--generate`, `--charset` and `--show-generated`: undefined when
 * `--generate` is not given.
 * @throws UsageError naming the flag: a bad length or alphabet, --generate
 * with another payload source, --charset or --show-generated without it.
 */
export function parseGenerate(values: GenerateValues): GenerateSpec | undefined {
  if (values.generate === undefined) {
    if (values.charset !== undefined) throw new UsageError("--charset goes with --generate");
    if (values["show-generated"]) throw new UsageError("--show-generated goes with --generate");
    return undefined;
  }
  const other =
    values.data !== undefined
      ? "--data"
      : values["from-file"] !== undefined
        ? "--from-file"
        : undefined;
  if (other !== undefined) {
    throw new UsageError(
      `give the payload with one of --data, --from-file or --generate, not both ${other} and --generate`,
    );
  }
  const length = parseLength(values.generate);
  const name = values.charset ?? "alnum";
  const alphabet = Object.hasOwn(CHARSETS, name)
    ? (CHARSETS[name] as string)
    : customAlphabet(name);
  return { length, charsetName: Object.hasOwn(CHARSETS, name) ? name : "custom", alphabet };
}

function parseLength(text: string): number {
  if (text === "") return DEFAULT_LENGTH;
  if (!/^[0-9]+$/.test(text) || Number(text) < MIN_LENGTH || Number(text) > MAX_LENGTH) {
    throw new UsageError(
      `--generate LENGTH must be a whole number from ${MIN_LENGTH} to ${MAX_LENGTH} (got "${text}")`,
    );
  }
  return Number(text);
}

/**
 * A custom alphabet: the characters of `--charset` itself, printable ASCII
 * without space, each once, at least two of them.
 */
function customAlphabet(chars: string): string {
  const names = Object.keys(CHARSETS).join(", ");
  if (!/^[\x21-\x7e]+$/.test(chars)) {
    throw new UsageError(
      `--charset must be ${names}, or the characters to draw from (printable ASCII, no space) (got "${chars}")`,
    );
  }
  const seen = new Set<string>();
  for (const c of chars) {
    if (seen.has(c)) {
      throw new UsageError(
        `--charset "${chars}" lists "${c}" twice: each character of a custom alphabet must appear once (it would be drawn twice as often)`,
      );
    }
    seen.add(c);
  }
  if (seen.size < 2) {
    throw new UsageError(`--charset needs at least two characters to draw from (got "${chars}")`);
  }
  return chars;
}

/**
 * A random string of `length` characters of `alphabet`, each drawn
 * uniformly and independently (crypto.randomInt).
 */
export function randomString(length: number, alphabet: string): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** The entropy of a generated value, in whole bits, for the note on stderr. */
export function entropyBits(spec: GenerateSpec): number {
  return Math.floor(spec.length * Math.log2(spec.alphabet.length));
}

/** The generated payload. */
export function generatePayload(spec: GenerateSpec): Uint8Array {
  return new TextEncoder().encode(randomString(spec.length, spec.alphabet));
}

/** The note that says what was generated (never the value). */
export function generatedNote(spec: GenerateSpec): string {
  return `Generated a random ${spec.length}-character ${spec.charsetName} value (${entropyBits(spec)} bits); it is not shown (--show-generated shows it).\n`;
}

/**
 * `--generate` makes text; only an opaque secret takes any text (the other
 * types' payloads have a shape the server checks).
 * @throws UsageError naming the flag and the type.
 */
export function checkGeneratedType(typeName: string): void {
  if (typeName !== "opaque") {
    throw new UsageError(
      `--generate makes an opaque payload (random text), and this secret's type is ${typeName}, whose payload has a shape of its own`,
      "give that payload with --data or --from-file",
    );
  }
}

/** `--show-generated` prints the value alone on stdout, which -o json would spoil. */
export function checkShowGenerated(values: GenerateValues, format: string): void {
  if (values["show-generated"] && format === "json") {
    throw new UsageError("--show-generated prints the value alone on stdout: leave out -o json");
  }
}
