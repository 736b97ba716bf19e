#!/usr/bin/env node
// The CLI's command: its bundle (dist/coffer.mjs, `npm run build`), in this
// one process with plain Node, so that signals reach it directly.
await import("../dist/coffer.mjs").catch((err) => {
  if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist/coffer.mjs")) {
    process.stderr.write(
      "coffer: the CLI is not built (no dist/coffer.mjs): run `npm run build` at the repository root\n",
    );
    process.exit(1);
  }
  throw err;
});
