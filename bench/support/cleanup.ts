/**
 * Things to undo at the end of a run, newest first: stop processes, drop the
 * database, remove files. Run once, by the run's finally block or by a
 * signal handler, whichever comes first.
 */
const tasks: { name: string; run: () => Promise<unknown> }[] = [];
let running: Promise<void> | undefined;

/** Registers an undo step; returns a function that runs it now (and unregisters it). */
export function onCleanup(name: string, run: () => Promise<unknown>): () => Promise<void> {
  const task = { name, run };
  tasks.push(task);
  return async () => {
    const i = tasks.indexOf(task);
    if (i < 0) return;
    tasks.splice(i, 1);
    await task.run();
  };
}

/** Runs every registered step, newest first; a failing step does not stop the others. */
export function cleanup(): Promise<void> {
  running ??= (async () => {
    while (tasks.length > 0) {
      const task = tasks.pop();
      if (task === undefined) break;
      try {
        await task.run();
      } catch (err) {
        process.stderr.write(`cleanup: ${task.name} failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return running;
}

/** On SIGINT or SIGTERM, clean up and exit (130 or 143). */
export function cleanupOnSignals(): void {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: cleaning up\n`);
      void cleanup().finally(() => process.exit(code));
    });
  }
}
