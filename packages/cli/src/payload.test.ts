import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SecretType } from "@coffer/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { mayNeedShaping, readPayload, shapePayload } from "./payload.ts";
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

  it("refuses both flags", async () => {
    await expect(
      readPayload(memoryContext(), { data: "a", "from-file": "b" }, { required: true }),
    ).rejects.toThrow(UsageError);
  });

  it("refuses an unreadable --from-file with exit code 1, whatever the reason, and says why", async () => {
    const locked = path.join(dir, "locked");
    await writeFile(locked, "x", { mode: 0o000 });
    const cases: [string, string][] = [
      [path.join(dir, "none"), "no such file"],
      [dir, "it is a folder, not a file"],
      [path.join(dir, "bin", "below-a-file"), "no such file (a part of its path is not a folder)"],
    ];
    // root reads a mode 000 file anyway: the case only holds for other users.
    if (process.getuid?.() !== 0) cases.push([locked, "permission denied"]);
    for (const [file, why] of cases) {
      const err = await readPayload(memoryContext(), { "from-file": file }, { required: true })
        .then(() => undefined)
        .catch((e: unknown) => e);
      expect(err, file).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode, file).toBe(ExitCode.Failure);
      expect((err as CliError).message, file).toBe(`cannot read --from-file ${file}: ${why}`);
    }
  });
});

describe("shapePayload", () => {
  const key =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
  const bytes = (s: string) => new TextEncoder().encode(s);

  it("wraps a raw OpenSSH key file into the ssh_key shape, byte for byte", () => {
    const shaped = shapePayload(SecretType.SSH_KEY, bytes(key));
    expect(JSON.parse(new TextDecoder().decode(shaped))).toEqual({ ssh_private_key: key });
    expect(mayNeedShaping(bytes(key))).toBe(true);
  });

  it("passes the JSON shape, other types and binary data on as they are", () => {
    const json = bytes(JSON.stringify({ ssh_private_key: key }));
    expect(shapePayload(SecretType.SSH_KEY, json)).toBe(json);
    expect(shapePayload(SecretType.CERTIFICATE, bytes(key))).toEqual(bytes(key));
    const binary = new Uint8Array([0xff, 0xfe, 0x2d]);
    expect(shapePayload(SecretType.SSH_KEY, binary)).toBe(binary);
    expect(mayNeedShaping(json)).toBe(false);
  });
});
