#!/usr/bin/env node
// Runs the CLI from its TypeScript sources in this one process (no wrapper
// process between a signal and `coffer server` or `coffer agent`, so SIGTERM
// stops them cleanly).
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
