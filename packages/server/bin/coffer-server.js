#!/usr/bin/env node
// The server's command: its compiled JavaScript (dist/, `npm run build`),
// in this one process with plain Node, so that SIGTERM reaches the server
// itself and drains it.
await import("../dist/main.js").catch((err) => {
  if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist/main.js")) {
    process.stderr.write(
      "coffer-server: the server is not built (no dist/main.js): run `npm run build` at the repository root\n",
    );
    process.exit(1);
  }
  throw err;
});
