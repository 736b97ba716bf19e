import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { REPO_ROOT } from "./processes.ts";

/** The parts of a V8 `.cpuprofile` (written by `node --cpu-prof`) read here. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  /** Microseconds on the monotonic clock (the one `process.hrtime` reads). */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where the CPU went in a window of one process's profile. */
export interface ProfileSummary {
  file: string;
  /** Milliseconds of samples inside the window. */
  windowMs: number;
  /** Milliseconds not idle (everything but `(idle)`). */
  busyMs: number;
  /** Self time by component (package, Node module, server folder, GC...), busiest first. */
  byComponent: { name: string; ms: number }[];
  /** Self time by function, busiest first. */
  topSelf: { name: string; component: string; ms: number }[];
  /** Inclusive time of this repository's functions (each counted once per sample). */
  topInclusive: { name: string; ms: number }[];
}

/** The component a frame belongs to: an npm package, a Node module, a repository folder, or a V8 bucket. */
function componentOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  if (url.startsWith("node:")) {
    const parts = url.slice(5).split("/");
    return `node:${parts[0] === "internal" ? `internal/${parts[1] ?? ""}` : parts[0]}`;
  }
  const file = url.startsWith("file://") ? decodeURIComponent(url.slice(7)) : url;
  const nm = file.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = file.slice(nm + 14).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? file);
  }
  const rel = path.relative(REPO_ROOT, file);
  if (!rel.startsWith("..")) {
    // packages/server/src/watch/feed.ts -> server/watch; packages/agent/src/reconcile.ts -> agent
    const m = /^packages\/([^/]+)\/src\/(?:([^/]+)\/)?/.exec(rel);
    if (m !== null) return m[2] !== undefined ? `${m[1]}/${m[2]}` : (m[1] as string);
    return rel;
  }
  return file;
}

function frameName(frame: CpuProfile["nodes"][number]["callFrame"]): string {
  const fn = frame.functionName === "" ? "(anonymous)" : frame.functionName;
  if (frame.url === "") return fn;
  const file = frame.url.startsWith("file://") ? decodeURIComponent(frame.url.slice(7)) : frame.url;
  const nm = file.lastIndexOf("/node_modules/");
  const short =
    nm >= 0
      ? file.slice(nm + 14)
      : file.startsWith(REPO_ROOT)
        ? path.relative(REPO_ROOT, file)
        : file;
  // tsx compiles this repository's files without source positions in the
  // profile (every frame says line 1): name the file only.
  if (nm < 0 && file.startsWith(REPO_ROOT)) return `${fn} ${short}`;
  return `${fn} ${short}:${frame.lineNumber + 1}`;
}

/**
 * Summarizes the samples of `file` taken between `fromUs` and `toUs`
 * (monotonic microseconds, as `process.hrtime.bigint() / 1000n`).
 */
export async function summarizeProfile(
  file: string,
  fromUs: number,
  toUs: number,
  top = 15,
): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<number, number>();
  const inclusive = new Map<string, number>();
  let windowUs = 0;
  let idleUs = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const weight = profile.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const id = profile.samples[i] as number;
    windowUs += weight;
    self.set(id, (self.get(id) ?? 0) + weight);
    const node = byId.get(id);
    if (node?.callFrame.functionName === "(idle)") {
      idleUs += weight;
      continue;
    }
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame === undefined || !frame.url.includes("/packages/")) continue;
      if (frame.url.includes("/node_modules/")) continue;
      const name = frameName(frame);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + weight);
    }
  }

  const components = new Map<string, number>();
  const functions = new Map<string, { component: string; us: number }>();
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    const component = componentOf(frame.url, frame.functionName);
    components.set(component, (components.get(component) ?? 0) + us);
    const name = frameName(frame);
    const f = functions.get(name) ?? { component, us: 0 };
    f.us += us;
    functions.set(name, f);
  }
  const toMs = (us: number) => us / 1000;
  return {
    file,
    windowMs: toMs(windowUs),
    busyMs: toMs(windowUs - idleUs),
    byComponent: [...components]
      .filter(([name]) => name !== "(idle)")
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: toMs(us) })),
    topSelf: [...functions]
      .filter(([name]) => name !== "(idle)")
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([name, f]) => ({ name, component: f.component, ms: toMs(f.us) })),
    topInclusive: [...inclusive]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: toMs(us) })),
  };
}

/** The `.cpuprofile` files in a folder. */
export async function profilesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir))
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}
