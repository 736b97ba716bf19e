/**
 * A token that differs from `token` in its last character, so a test that
 * needs a bad token always gets one. Appending a fixed character after
 * dropping the last one (`token.slice(0, -1) + "x"`) gives the same, valid
 * token back whenever it already ended in that character: with 62 possible
 * last characters, one run in 62.
 */
export function withLastCharChanged(token: string): string {
  if (token.length === 0) throw new Error("an empty token has no last character to change");
  const last = token.at(-1);
  return `${token.slice(0, -1)}${last === "x" ? "y" : "x"}`;
}
