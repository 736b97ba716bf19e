import { percentile } from "./stats.ts";

/**
 * The protocol of a bare loop process (bench/baselines/*-loop.ts) with the
 * bench: it prints JSON lines on stdout, `{"measure":"start"}` when the
 * measured window begins (after its warm-up), `{"measure":"end"}` when it
 * ends, then `{"result":{...}}` with a {@link LoopResult}.
 */
export interface LoopResult {
  calls: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The loop process's own CPU time (user + system) over the measured window, µs. */
  cpuUs: number;
  /** A sample check: e.g. "decrypted 1024 bytes". */
  sample: string;
}

/** Settings the bench passes to a loop process in `BENCH_LOOP` (JSON). */
export interface LoopSettings {
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  /** Postgres URL (the postgres loops) or data folder (the PGlite loop). */
  target: string;
}

export function loopSettings(): LoopSettings {
  const raw = process.env.BENCH_LOOP;
  if (raw === undefined)
    throw new Error("BENCH_LOOP is not set: this process is started by bench/run.ts");
  return JSON.parse(raw) as LoopSettings;
}

const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

/**
 * Runs `call` from `concurrency` workers for the warm-up and then for the
 * measured window, and prints the protocol lines. Every call is timed; a
 * call that throws counts as an error (and the loop goes on).
 */
export async function runLoop(
  settings: LoopSettings,
  call: (worker: number) => Promise<void>,
  sample: string,
): Promise<void> {
  const phase = async (seconds: number, latencies: number[] | undefined) => {
    const until = performance.now() + seconds * 1000;
    let calls = 0;
    let errors = 0;
    await Promise.all(
      Array.from({ length: settings.concurrency }, async (_, worker) => {
        while (performance.now() < until) {
          const t = performance.now();
          try {
            await call(worker);
            calls += 1;
          } catch {
            errors += 1;
          }
          latencies?.push(performance.now() - t);
        }
      }),
    );
    return { calls, errors };
  };
  await phase(settings.warmupSeconds, undefined);
  const latencies: number[] = [];
  say({ measure: "start" });
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const { calls, errors } = await phase(settings.seconds, latencies);
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  say({ measure: "end" });
  latencies.sort((a, b) => a - b);
  const result: LoopResult = {
    calls,
    errors,
    seconds,
    rps: calls / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    cpuUs: used.user + used.system,
    sample,
  };
  say({ result });
}
