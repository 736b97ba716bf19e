import { Readable } from "node:stream";
import type { Context, Output } from "./context.ts";

/** An {@link Output} that keeps what was written, for tests. */
export class MemoryOutput implements Output {
  readonly chunks: Buffer[] = [];
  constructor(readonly isTTY = false) {}
  async write(chunk: string | Uint8Array): Promise<void> {
    this.chunks.push(Buffer.from(chunk));
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/** A context over memory streams, for tests of commands that need no server. */
export function memoryContext(
  options: { env?: NodeJS.ProcessEnv; stdin?: string | Buffer; home?: string } = {},
): Context & { stdout: MemoryOutput; stderr: MemoryOutput } {
  const stdout = new MemoryOutput();
  const stderr = new MemoryOutput();
  const stdin = Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]);
  return {
    io: { stdout, stderr, stdin },
    env: options.env ?? {},
    home: options.home ?? "/nonexistent-home",
    errorContext: {},
    stdout,
    stderr,
  };
}
