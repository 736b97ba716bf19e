#!/usr/bin/env node
// Runs the server from its TypeScript sources in this one process (no wrapper
// process between the signal and the server, so SIGTERM drains cleanly).
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
