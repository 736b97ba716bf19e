import { readFile, writeFile } from "node:fs/promises";

/**
 * Replaces one benchmark's section of RESULTS.md, between
 * `<!-- <key>:begin -->` and `<!-- <key>:end -->`, leaving the other
 * benchmarks' sections as they are; appends the section when it is missing.
 */
export async function writeSection(file: string, key: string, body: string): Promise<void> {
  const begin = `<!-- ${key}:begin -->`;
  const end = `<!-- ${key}:end -->`;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    text = "# Benchmark results\n\nEach section is rewritten by its own benchmark.\n";
  }
  const section = `${begin}\n${body.trim()}\n${end}`;
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from >= 0 && to > from) {
    text = text.slice(0, from) + section + text.slice(to + end.length);
  } else {
    text = `${text.trimEnd()}\n\n${section}\n`;
  }
  await writeFile(file, text);
}
