import { readFile } from "node:fs/promises";

/** The parts of a V8 `.heapsnapshot` read here. */
interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/**
 * Self size and count of the heap's objects, by kind and constructor (or
 * native name): `object Foo`, `closure bar`, `native Http2Stream`...
 */
export async function heapByKind(
  file: string,
): Promise<Map<string, { size: number; count: number }>> {
  const snap = JSON.parse(await readFile(file, "utf8")) as HeapSnapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] ?? "?";
    let name = snap.strings[snap.nodes[i + nameAt] as number] ?? "?";
    // Strings and code differ by content: group them by kind only.
    if (type === "string" || type === "concatenated string" || type === "sliced string") {
      name = "";
    } else if (type === "code" || type === "number" || type === "hidden") {
      name = "";
    } else if (name.length > 60) {
      name = `${name.slice(0, 57)}...`;
    }
    const key = name === "" ? `(${type})` : `${type} ${name}`;
    const entry = out.get(key) ?? { size: 0, count: 0 };
    entry.size += snap.nodes[i + sizeAt] as number;
    entry.count += 1;
    out.set(key, entry);
  }
  return out;
}

/** What grew between two snapshots, per `per` (streams), biggest first. */
export function heapGrowth(
  before: Map<string, { size: number; count: number }>,
  after: Map<string, { size: number; count: number }>,
  per: number,
  top = 15,
): { kind: string; bytesPer: number; countPer: number }[] {
  const rows: { kind: string; bytesPer: number; countPer: number }[] = [];
  for (const [kind, a] of after) {
    const b = before.get(kind) ?? { size: 0, count: 0 };
    rows.push({ kind, bytesPer: (a.size - b.size) / per, countPer: (a.count - b.count) / per });
  }
  return rows.sort((x, y) => y.bytesPer - x.bytesPer).slice(0, top);
}

/**
 * `node --max-old-space-size=... bench/support/heap-snapshot.ts <before> <after> <per>`:
 * prints {@link heapGrowth} as JSON (a large snapshot needs more heap than the bench has).
 */
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1])) {
  const [before, after, per] = process.argv.slice(2);
  if (before === undefined || after === undefined || per === undefined) {
    throw new Error("usage: heap-snapshot.ts <before.heapsnapshot> <after.heapsnapshot> <per>");
  }
  const growth = heapGrowth(await heapByKind(before), await heapByKind(after), Number(per), 20);
  process.stdout.write(`${JSON.stringify(growth)}\n`);
}
