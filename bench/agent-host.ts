/**
 * Hosts many Coffer agents in one process for the watch benchmark:
 * `node --import tsx bench/agent-host.ts <config.yaml>...`, started by
 * bench/watch.ts with an IPC channel. Each config becomes one real agent
 * ({@link startAgent}), with its own client, HTTP/2 connection, watch stream
 * and state file, exactly as `coffer-agent --config <file>` would run it;
 * only the process is shared, since a thousand agent processes would not fit.
 *
 * Messages to the parent: `ready` once every agent rendered its files (or
 * `failed`), `stopped` after a `stop` request. The host exits when the
 * parent goes away.
 */
import { type AgentHandle, loadAgentConfig, startAgent } from "@coffer/agent";

/** What the host tells bench/watch.ts. */
export type HostMessage =
  | { type: "ready"; agents: number; ms: number; rss: number; heapUsed: number }
  | { type: "failed"; error: string }
  | { type: "stopped"; ms: number };

/** What bench/watch.ts tells the host. */
export type HostRequest = { type: "stop" };

/** Agents started at once; the rest wait their turn, as a rolling deploy would stagger them. */
const STARTING_AT_ONCE = 50;
const READY_TIMEOUT_MS = 180_000;

const send = (m: HostMessage) => process.send?.(m);

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error("agent-host runs under bench/watch.ts (IPC)");
  process.once("disconnect", () => process.exit(1));
  // Exit, rather than die, so that --cpu-prof writes its profile.
  process.once("SIGTERM", () => process.exit(143));
  const files = process.argv.slice(2);
  const agents: AgentHandle[] = [];
  let stopping = false;
  process.on("message", (m: HostRequest) => {
    if (m.type !== "stop" || stopping) return;
    stopping = true;
    const started = performance.now();
    void Promise.allSettled(agents.map((a) => a.stop())).then(() => {
      send({ type: "stopped", ms: performance.now() - started });
      // The agents' HTTP/2 sessions would keep the process alive a while.
      setTimeout(() => process.exit(0), 100);
    });
  });

  const started = performance.now();
  let next = 0;
  const starter = async () => {
    while (next < files.length && !stopping) {
      const file = files[next++] as string;
      const agent = await startAgent(await loadAgentConfig(file));
      agents.push(agent);
    }
  };
  await Promise.all(Array.from({ length: STARTING_AT_ONCE }, starter));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const waiting = agents.flatMap((a) =>
        a
          .status()
          .secrets.filter((s) => s.state !== "current")
          .map((s) => `${s.destination}: ${s.state}${s.error ? ` (${s.error})` : ""}`),
      );
      reject(
        new Error(
          `not ready after ${READY_TIMEOUT_MS} ms: ${waiting.length} files, e.g. ${waiting.slice(0, 5).join("; ")}`,
        ),
      );
    }, READY_TIMEOUT_MS);
  });
  await Promise.race([Promise.all(agents.map((a) => a.ready)), late]);
  clearTimeout(timer);
  const m = process.memoryUsage();
  send({
    type: "ready",
    agents: agents.length,
    ms: performance.now() - started,
    rss: m.rss,
    heapUsed: m.heapUsed,
  });
}

main().catch((err: unknown) => {
  send({ type: "failed", error: err instanceof Error ? err.message : String(err) });
  setTimeout(() => process.exit(1), 100);
});
