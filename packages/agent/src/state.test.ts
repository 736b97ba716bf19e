import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StateFileError, StateStore } from "./state.ts";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-agent-state-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("StateStore", () => {
  it("starts empty without a file, and reads back what it saved (mode 0600)", async () => {
    const file = path.join(dir, "sub/state.json");
    const state = await StateStore.load(file);
    expect(state.cursor).toBe("");
    state.cursor = "42";
    state.setFile("/run/a", {
      secretId: "s",
      revision: 3,
      crc32: 7,
      format: "raw",
      singleAccess: false,
    });
    state.setSingleAccess("/otp@latest_enabled", { secretId: "t", intent: 2, handled: 1 });
    await state.save();
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const again = await StateStore.load(file);
    expect(again.cursor).toBe("42");
    expect(again.fileRecord("/run/a")).toEqual({
      secretId: "s",
      revision: 3,
      crc32: 7,
      format: "raw",
      singleAccess: false,
    });
    expect(again.singleAccess("/otp@latest_enabled")).toEqual({
      secretId: "t",
      intent: 2,
      handled: 1,
    });
    again.setFile("/run/a", undefined);
    again.setSingleAccess("/otp@latest_enabled", undefined);
    await again.save();
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({
      version: 1,
      cursor: "42",
      files: {},
      singleAccess: {},
    });
  });

  it("shares writes between concurrent saves, and the last change always lands", async () => {
    const file = path.join(dir, "state.json");
    const state = await StateStore.load(file);
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 20; i++) {
      state.cursor = String(i);
      saves.push(state.save());
    }
    await Promise.all(saves);
    expect(state.saves).toBeLessThanOrEqual(3);
    expect(JSON.parse(await readFile(file, "utf8")).cursor).toBe("20");
    // A save asked for after a write started waits for one more write.
    state.cursor = "21";
    const first = state.save();
    await Promise.resolve();
    state.cursor = "22";
    const second = state.save();
    await Promise.all([first, second]);
    expect(JSON.parse(await readFile(file, "utf8")).cursor).toBe("22");
  });

  it("refuses a state file it cannot read, saying what to do", async () => {
    const file = path.join(dir, "state.json");
    await writeFile(file, "{not json");
    await expect(StateStore.load(file)).rejects.toThrow(StateFileError);
    await expect(StateStore.load(file)).rejects.toThrow(/move it away to start afresh/);
    await writeFile(file, JSON.stringify({ version: 2 }));
    await expect(StateStore.load(file)).rejects.toThrow(
      `state file ${file} is not an agent state file (Invalid input: expected 1)`,
    );
    const record = { secretId: "s", revision: 1.5, crc32: 1, format: "raw", singleAccess: false };
    await writeFile(
      file,
      JSON.stringify({ version: 1, cursor: "", files: { "/a": record }, singleAccess: {} }),
    );
    await expect(StateStore.load(file)).rejects.toThrow(
      `state file ${file} is not an agent state file (Invalid input: expected int, received number)`,
    );
  });
});
