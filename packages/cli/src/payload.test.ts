import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import { readPayload } from "./payload.ts";
import { memoryContext } from "./test-io.ts";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-payload-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readPayload", () => {
  it("takes --data as UTF-8 bytes", async () => {
    expect(await readPayload(memoryContext(), { data: "héllo" }, { required: true })).toEqual(
      new TextEncoder().encode("héllo"),
    );
  });

  it("reads --from-file byte for byte, and - as stdin", async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 10]);
    const file = path.join(dir, "bin");
    await writeFile(file, bytes);
    expect(
      Buffer.from(
        (await readPayload(memoryContext(), { "from-file": file }, { required: true })) ?? [],
      ),
    ).toEqual(bytes);
    const ctx = memoryContext({ stdin: bytes });
    expect(
      Buffer.from((await readPayload(ctx, { "from-file": "-" }, { required: false })) ?? []),
    ).toEqual(bytes);
  });

  it("reads piped stdin only when the payload is required", async () => {
    expect(
      await readPayload(memoryContext({ stdin: "x" }), {}, { required: false }),
    ).toBeUndefined();
    expect(await readPayload(memoryContext({ stdin: "x" }), {}, { required: true })).toEqual(
      Buffer.from("x"),
    );
  });

  it("refuses both flags, and a missing file", async () => {
    await expect(
      readPayload(memoryContext(), { data: "a", "from-file": "b" }, { required: true }),
    ).rejects.toThrow(UsageError);
    await expect(
      readPayload(memoryContext(), { "from-file": path.join(dir, "none") }, { required: true }),
    ).rejects.toThrow("no such file");
  });
});
