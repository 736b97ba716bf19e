import type { ErrorContext } from "./errors.ts";

/** A stream the CLI writes to; `write` resolves once the chunk is handed to the OS. */
export interface Output {
  write(chunk: string | Uint8Array): Promise<void>;
  readonly isTTY: boolean;
}

/** The process's streams, injectable for tests. */
export interface Io {
  stdout: Output;
  stderr: Output;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** What every command runs with: no module-level state. */
export interface Context {
  io: Io;
  env: NodeJS.ProcessEnv;
  /** The user's home folder (for the default profile file). */
  home: string;
  /** Filled as the command connects, for the hints of an error. */
  errorContext: ErrorContext;
}

/** An {@link Output} over a Node stream. */
export function outputOf(stream: NodeJS.WriteStream): Output {
  return {
    isTTY: stream.isTTY === true,
    write: (chunk) =>
      new Promise((resolve, reject) => {
        stream.write(chunk, (err) => (err ? reject(err) : resolve()));
      }),
  };
}
