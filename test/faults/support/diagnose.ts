import type { TsxProcess } from "../../support/tsx-process.ts";

/**
 * The error lines (level 50 and up) a process logged, shortened: what a
 * failed fault test prints to say why, e.g. the cause of an INTERNAL. The
 * server's logs carry no payloads or tokens by contract, and
 * leak-scan.test.ts holds it to that.
 */
export function errorLines(proc: TsxProcess | undefined, max = 10): string {
  if (proc === undefined) return "";
  const lines = proc
    .logs()
    .filter((l) => typeof l.level === "number" && l.level >= 50)
    .map((l) => {
      const err = l.err as { message?: unknown } | undefined;
      return `${String(l.msg)}: ${String(err?.message ?? "").slice(0, 400)}`;
    });
  return `${proc.label} (pid ${proc.pid}) error lines: ${lines.length}\n${lines.slice(0, max).join("\n")}`;
}
