/**
 * A generated .env file of a given length that uses every rule of the
 * documented .env grammar (README, "Importing and exporting"), and what
 * importing it must store: the value of each key as the rules read it,
 * written down here independently of the parser.
 */
export interface EnvFixture {
  text: string;
  /** Lines in `text`. */
  lines: number;
  /** Each key that is imported and its value (for a repeated key, its last value). */
  expected: Map<string, string>;
  /** Keys given more than once: the earlier entries are refused ("Given again at line N"). */
  repeated: Set<string>;
  /** Keys with an empty value: refused (a secret needs 1 to 65,536 bytes). */
  empty: Set<string>;
  /** How many entries (KEY=value) the file holds. */
  entries: number;
}

export function generateEnv(minLines = 500): EnvFixture {
  const out: string[] = [];
  const expected = new Map<string, string>();
  const seen = new Set<string>();
  const repeated = new Set<string>();
  const empty = new Set<string>();
  let entries = 0;
  const add = (key: string, lines: string[], value: string) => {
    out.push(...lines);
    entries++;
    if (seen.has(key)) repeated.add(key);
    seen.add(key);
    if (value === "") {
      empty.add(key);
      expected.delete(key);
    } else {
      empty.delete(key);
      expected.set(key, value);
    }
  };
  for (let i = 0; out.length < minLines; i++) {
    switch (i % 14) {
      case 0:
        out.push(`# section ${i}: a full-line comment with = and 'quotes'`);
        break;
      case 1:
        out.push("");
        break;
      case 2:
        add(`PLAIN_${i}`, [`PLAIN_${i}=plain-${i}`], `plain-${i}`);
        break;
      case 3:
        add(
          `EXPORTED_${i}`,
          [`export EXPORTED_${i} = value with spaces ${i}   # an inline comment`],
          `value with spaces ${i}`,
        );
        break;
      case 4:
        add(
          `SINGLE_${i}`,
          [`SINGLE_${i}='literal # not a comment "dq" \\n $HOME ${i}'`],
          `literal # not a comment "dq" \\n $HOME ${i}`,
        );
        break;
      case 5:
        add(
          `DOUBLE_${i}`,
          [`DOUBLE_${i}="esc \\"q\\" back\\\\slash tab\\t \\$HOME é ${i}" # comment`],
          `esc "q" back\\slash tab\t $HOME é ${i}`,
        );
        break;
      case 6:
        add(
          `PEM_${i}`,
          [`PEM_${i}="-----BEGIN KEY-----`, `line a ${i}`, "  line b", `-----END KEY-----"`],
          `-----BEGIN KEY-----\nline a ${i}\n  line b\n-----END KEY-----`,
        );
        break;
      case 7:
        add(`ESCAPED_NL_${i}`, [`ESCAPED_NL_${i}="first\\nsecond ${i}"`], `first\nsecond ${i}`);
        break;
      case 8:
        add(
          `url.with-dots_${i}`,
          [`url.with-dots_${i}=https://h.test/?a=b&c=${i}#frag`],
          `https://h.test/?a=b&c=${i}#frag`,
        );
        break;
      case 9:
        // Five keys given again and again: the last one of each wins.
        add(`DUP_${i % 5}`, [`DUP_${i % 5}=dup value ${i}`], `dup value ${i}`);
        break;
      case 10:
        add(
          `SPACED_${i}`,
          [`   SPACED_${i}  =  '  leading and trailing ${i}  '   `],
          `  leading and trailing ${i}  `,
        );
        break;
      case 11:
        add(`UNICODE_${i}`, [`UNICODE_${i}=日本語 ✓ 🗝️ ${i}`], `日本語 ✓ 🗝️ ${i}`);
        break;
      case 12:
        add(`QUOTES_${i}`, [`QUOTES_${i}="it's = \\"both\\" ${i}"`], `it's = "both" ${i}`);
        break;
      case 13:
        if (i % 28 === 13) add(`EMPTY_${i}`, [`EMPTY_${i}=`], "");
        else add(`BACKTICK_${i}`, [`BACKTICK_${i}=\`a 'b' "c" ${i}\``], `a 'b' "c" ${i}`);
        break;
    }
  }
  return { text: `${out.join("\n")}\n`, lines: out.length, expected, repeated, empty, entries };
}
