#!/usr/bin/env node
// Runs the agent from its TypeScript sources in this one process (no wrapper
// process between a signal and the agent, so SIGTERM stops it cleanly).
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
