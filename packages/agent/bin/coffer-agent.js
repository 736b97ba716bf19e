#!/usr/bin/env node
// The agent's command: its compiled JavaScript (dist/, `npm run build`), in
// this one process with plain Node, so that signals reach it directly.
await import("../dist/main.js");
