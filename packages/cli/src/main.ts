import { homedir } from "node:os";
import { outputOf } from "./context.ts";
import { run } from "./run.ts";

// Exit explicitly: an HTTP/2 session of the client would keep the process
// alive a while. Every write was awaited, so nothing is cut off.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  // `coffer secret list | head -1`: the reader left; so do we, quietly.
  if (err.code === "EPIPE") process.exit(0);
});
process.exit(
  await run(process.argv.slice(2), {
    io: {
      stdout: outputOf(process.stdout),
      stderr: outputOf(process.stderr),
      stdin: process.stdin,
    },
    env: process.env,
    home: homedir(),
    errorContext: {},
  }),
);
