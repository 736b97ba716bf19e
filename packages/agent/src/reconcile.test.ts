import { mkdtemp, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Backoff } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SecretFileConfig } from "./config.ts";
import { FakeCoffer, memoryLogger } from "./fake-coffer.ts";
import { type AgentClient, buildUnits, type Outcome, Reconciler, type Unit } from "./reconcile.ts";
import { StateStore } from "./state.ts";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-agent-reconcile-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A reconciler over a fake server, with a real state file in `dir`. */
async function setup(
  fake: FakeCoffer,
  files: Omit<SecretFileConfig, "mode">[],
  stateName = "state.json",
) {
  const state = await StateStore.load(path.join(dir, stateName));
  const log = memoryLogger();
  const changed: string[][] = [];
  const controller = new AbortController();
  const reconciler = new Reconciler({
    client: fake.client,
    state,
    logger: log.logger,
    projectId: fake.projectId,
    region: "",
    callTimeoutMs: 1000,
    signal: controller.signal,
    backoff: () => new Backoff({ initialDelayMs: 1, maxDelayMs: 5 }),
    onChanged: (_u, d) => changed.push(d),
  });
  const units = buildUnits(files.map((f) => ({ mode: 0o400, ...f })));
  const unit = units[0] as Unit;
  return { state, log, changed, reconciler, units, unit, controller };
}

const at = (name: string) => path.join(dir, name);
const read = (name: string) => readFile(at(name), "utf8");
const exists = (name: string) =>
  stat(at(name)).then(
    () => true,
    () => false,
  );

describe("reconcile a normal secret", () => {
  it("writes the newest enabled version with mode 0400, then follows new versions", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/prod", "db", { data: "one" });
    const { reconciler, unit, log, state } = await setup(fake, [
      {
        ref: { kind: "location", path: "/prod", name: "db" },
        revision: "latest_enabled",
        destination: at("db"),
        format: { kind: "raw" },
      },
    ]);
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("db")).toBe("one");
    expect((await stat(at("db"))).mode & 0o777).toBe(0o400);
    expect(state.fileRecord(at("db"))).toMatchObject({
      secretId: id,
      revision: 1,
      singleAccess: false,
    });
    expect(log.lines.find((l) => l.msg === "file written")).toMatchObject({
      destination: at("db"),
      secretId: id,
      revision: 1,
    });

    fake.addVersion(id, "two");
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("db")).toBe("two");
    expect(log.text()).not.toContain('two"');
  });

  it("does not rewrite an unchanged file, but restores one deleted or chmodded by hand", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "alpha" });
    const { reconciler, unit, changed } = await setup(fake, [
      {
        ref: { kind: "location", path: "/", name: "a" },
        revision: "latest_enabled",
        destination: at("a"),
        format: { kind: "raw" },
      },
    ]);
    await reconciler.reconcile(unit);
    const before = (await stat(at("a"))).ino;
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "unchanged" });
    expect((await stat(at("a"))).ino).toBe(before);
    expect(changed).toHaveLength(1);

    await unlink(at("a"));
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("a")).toBe("alpha");
  });

  it("goes back to the previous enabled version when the newest is disabled, and removes the file when none is left", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v1" });
    fake.addVersion(id, "v2");
    const { reconciler, unit, log, state } = await setup(fake, [
      {
        ref: { kind: "id", id },
        revision: "latest_enabled",
        destination: at("a"),
        format: { kind: "raw" },
      },
    ]);
    await reconciler.reconcile(unit);
    expect(await read("a")).toBe("v2");
    fake.setEnabled(id, 2, false);
    await reconciler.reconcile(unit);
    expect(await read("a")).toBe("v1");
    fake.setEnabled(id, 1, false);
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "removed" });
    expect(await exists("a")).toBe(false);
    expect(state.fileRecord(at("a"))).toBeUndefined();
    expect(log.lines.find((l) => l.msg === "file removed")).toMatchObject({
      destination: at("a"),
      revision: 1,
    });
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "absent" });
  });

  it("follows a pinned revision, and removes the file when that revision is disabled", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "a", { data: "v1" });
    fake.addVersion(id, "v2");
    const { reconciler, unit } = await setup(fake, [
      { ref: { kind: "id", id }, revision: 1, destination: at("a"), format: { kind: "raw" } },
    ]);
    await reconciler.reconcile(unit);
    expect(await read("a")).toBe("v1");
    fake.setEnabled(id, 1, false);
    await reconciler.reconcile(unit);
    expect(await exists("a")).toBe(false);
  });

  it("keeps the file when the server cannot be reached", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "kept" });
    const { reconciler, unit } = await setup(fake, [
      {
        ref: { kind: "location", path: "/", name: "a" },
        revision: "latest_enabled",
        destination: at("a"),
        format: { kind: "raw" },
      },
    ]);
    await reconciler.reconcile(unit);
    fake.fault = () => new ConnectError("down", Code.Unavailable);
    const outcome = await reconciler.reconcile(unit);
    expect(outcome.kind).toBe("retry");
    expect(await read("a")).toBe("kept");
  });

  it("renders several files of one secret from one access, and reports a payload it cannot render without quoting it", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "kv", { data: '{"user":"app","password":"s3cr3t-VALUE"}' });
    const { reconciler, units, log } = await setup(fake, [
      {
        ref: { kind: "location", path: "/", name: "kv" },
        revision: "latest_enabled",
        destination: at("pw"),
        format: { kind: "json_field", field: "password" },
      },
      {
        ref: { kind: "location", path: "/", name: "kv" },
        revision: "latest_enabled",
        destination: at("env"),
        format: { kind: "dotenv" },
      },
      {
        ref: { kind: "location", path: "/", name: "kv" },
        revision: "latest_enabled",
        destination: at("missing"),
        format: { kind: "json_field", field: "nope" },
      },
    ]);
    expect(units).toHaveLength(1);
    const outcome = await reconciler.reconcile(units[0] as Unit);
    expect(outcome).toEqual({ kind: "failed", reason: 'the payload has no field "nope"' });
    expect(fake.accesses).toHaveLength(1);
    expect(await read("pw")).toBe("s3cr3t-VALUE");
    expect(await read("env")).toBe('user="app"\npassword="s3cr3t-VALUE"\n');
    expect(await exists("missing")).toBe(false);
    expect(log.text()).not.toContain("s3cr3t");
  });

  it("refuses a payload whose checksum does not match", async () => {
    const fake = new FakeCoffer();
    fake.createSecret("/", "a", { data: "x" });
    const { reconciler, unit } = await setup(fake, [
      {
        ref: { kind: "location", path: "/", name: "a" },
        revision: "latest_enabled",
        destination: at("a"),
        format: { kind: "raw" },
      },
    ]);
    const real = fake.client;
    const broken: AgentClient = {
      ...real,
      accessSecretVersionByPath: async (req) => {
        const res = await real.accessSecretVersionByPath(req);
        return { ...res, dataCrc32: res.dataCrc32 ^ 1 };
      },
    };
    const r = new Reconciler({
      client: broken,
      state: StateStore.memory(),
      logger: memoryLogger().logger,
      projectId: fake.projectId,
      region: "",
      callTimeoutMs: 1000,
      signal: new AbortController().signal,
    });
    expect(await r.reconcile(unit)).toEqual({
      kind: "retry",
      reason: "the payload arrived with a wrong checksum",
    });
    expect(await exists("a")).toBe(false);
    await reconciler.reconcile(unit);
    expect(await read("a")).toBe("x");
  });
});

describe("reconcile a single-access secret", () => {
  const otpFile = (ref: SecretFileConfig["ref"]): Omit<SecretFileConfig, "mode">[] => [
    { ref, revision: "latest_enabled", destination: at("otp"), format: { kind: "raw" } },
  ];

  it("consumes each new version exactly once, recording intent then handled, and keeps the file afterwards", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "code-1" });
    const { reconciler, unit, state, log } = await setup(
      fake,
      otpFile({ kind: "location", path: "/", name: "otp" }),
    );
    const saved = state.saves;

    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("otp")).toBe("code-1");
    expect(fake.served(id, 1)).toBe(1);
    // The intent was saved before the consuming access, handled after.
    expect(state.saves - saved).toBeGreaterThanOrEqual(2);
    expect(state.singleAccess(unit.key)).toEqual({ secretId: id, handled: 1 });
    const onDisk = JSON.parse(await readFile(path.join(dir, "state.json"), "utf8"));
    expect(onDisk.singleAccess[unit.key]).toEqual({ secretId: id, handled: 1 });
    expect(onDisk.files[at("otp")]).toMatchObject({ revision: 1, singleAccess: true });
    expect(JSON.stringify(onDisk)).not.toContain("code-1");
    const order = log.lines.map((l) => l.msg);
    expect(order.indexOf("consuming single-access version")).toBeLessThan(
      order.indexOf("file written"),
    );

    // Nothing enabled is left: the file stays, and nothing is consumed again.
    for (let i = 0; i < 3; i++) {
      expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "kept" });
    }
    expect(await read("otp")).toBe("code-1");
    expect(fake.consumingAccesses(id)).toHaveLength(1);

    fake.addVersion(id, "code-2");
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("otp")).toBe("code-2");
    expect(fake.consumingAccesses(id)).toHaveLength(2);
    expect(state.singleAccess(unit.key)).toEqual({ secretId: id, handled: 2 });
    expect(log.text()).not.toContain("code-");
  });

  it("never consumes a version at or below the handled revision, even when it is servable again", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "c1" });
    fake.addVersion(id, "c2");
    const { reconciler, unit, state } = await setup(fake, otpFile({ kind: "id", id }));
    state.setSingleAccess(unit.key, { secretId: id, handled: 2 });
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "kept" });
    expect(fake.consumingAccesses(id)).toHaveLength(0);
    expect(fake.accesses.every((a) => a.noConsume)).toBe(true);
  });

  it("removes a consumed payload's file only when the secret is deleted", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "c1" });
    const { reconciler, unit } = await setup(fake, otpFile({ kind: "id", id }));
    await reconciler.reconcile(unit);
    fake.deleteSecret(id);
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "kept" });
    expect(await read("otp")).toBe("c1");
    unit.secretDeleted = true;
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "removed" });
    expect(await exists("otp")).toBe(false);
  });

  it("after a restart with an intent and no handled, consumes the version when it is still servable", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "pending" });
    const first = await setup(fake, otpFile({ kind: "id", id }));
    first.state.setSingleAccess(first.unit.key, { secretId: id, intent: 1 });
    await first.state.save();
    // The crashed run recorded the intent but its access never reached the server.
    const { reconciler, unit, state, log } = await setup(fake, otpFile({ kind: "id", id }));
    expect(state.singleAccess(unit.key)).toEqual({ secretId: id, intent: 1 });
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "kept" });
    expect(await read("otp")).toBe("pending");
    expect(fake.served(id, 1)).toBe(1);
    expect(state.singleAccess(unit.key)).toEqual({ secretId: id, handled: 1 });
    expect(log.lines.some((l) => l.level === 50)).toBe(false);
  });

  it("after a restart with an intent whose version was consumed, logs it lost, marks it handled and never retries", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "gone" });
    const first = await setup(fake, otpFile({ kind: "id", id }));
    first.state.setSingleAccess(first.unit.key, { secretId: id, intent: 1 });
    await first.state.save();
    // The crashed run's access won: the server consumed it, the file was never written.
    fake.consumeElsewhere(id, 1);
    const { reconciler, unit, state, log } = await setup(fake, otpFile({ kind: "id", id }));
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "absent" });
    const lost = log.lines.find((l) => String(l.msg).startsWith("single-access version lost"));
    expect(lost).toMatchObject({ level: 50, secretId: id, revision: 1 });
    expect(state.singleAccess(unit.key)).toEqual({ secretId: id, handled: 1 });
    expect(fake.consumingAccesses(id)).toHaveLength(0);
    for (let i = 0; i < 3; i++) await reconciler.reconcile(unit);
    expect(fake.consumingAccesses(id)).toHaveLength(0);
    expect(
      log.lines.filter((l) => String(l.msg).startsWith("single-access version lost")),
    ).toHaveLength(1);
  });

  it("retries a consuming access cut off before the server, and logs the version lost when the answer was lost", async () => {
    const fake = new FakeCoffer();
    const a = fake.createSecret("/", "a", { singleAccess: true, data: "A" });
    const b = fake.createSecret("/", "b", { singleAccess: true, data: "B" });
    const failed = new Set<string>();
    fake.fault = (req) => {
      if (req.noConsume || failed.has(req.secretId)) return undefined;
      failed.add(req.secretId);
      // a: never reached the server; b: served, but the answer was lost.
      return req.secretId === a
        ? new ConnectError("connection reset", Code.Unavailable)
        : { after: new ConnectError("deadline", Code.DeadlineExceeded) };
    };
    const setA = await setup(fake, otpFile({ kind: "id", id: a }), "a.json");
    expect(await setA.reconciler.reconcile(setA.unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("otp")).toBe("A");
    expect(fake.consumingAccesses(a)).toHaveLength(2);

    const setB = await setup(
      fake,
      [
        {
          ref: { kind: "id", id: b },
          revision: "latest_enabled",
          destination: at("b"),
          format: { kind: "raw" },
        },
      ],
      "b.json",
    );
    expect(await setB.reconciler.reconcile(setB.unit)).toEqual({ kind: "done", result: "lost" });
    expect(fake.served(b, 1)).toBe(1);
    expect(await exists("b")).toBe(false);
    expect(
      setB.log.lines.find((l) => String(l.msg).startsWith("single-access version lost")),
    ).toBeDefined();
    expect(setB.state.singleAccess(setB.unit.key)).toEqual({ secretId: b, handled: 1 });
  });

  it("consumes nothing when the intent cannot be recorded", async () => {
    const fake = new FakeCoffer();
    const id = fake.createSecret("/", "otp", { singleAccess: true, data: "x" });
    const { reconciler, unit } = await setup(fake, otpFile({ kind: "id", id }), "gone/state.json");
    // The state file's folder becomes a file: every save fails.
    await writeFile(at("gone"), "");
    const outcome: Outcome = await reconciler.reconcile(unit);
    expect(outcome.kind).toBe("retry");
    expect(fake.consumingAccesses(id)).toHaveLength(0);
  });

  it("starts over when the secret at a location is created again", async () => {
    const fake = new FakeCoffer();
    const first = fake.createSecret("/", "otp", { singleAccess: true, data: "old" });
    fake.addVersion(first, "old-2");
    const { reconciler, unit } = await setup(
      fake,
      otpFile({ kind: "location", path: "/", name: "otp" }),
    );
    await reconciler.reconcile(unit);
    expect(await read("otp")).toBe("old-2");
    fake.deleteSecret(first);
    const second = fake.createSecret("/", "otp", { singleAccess: true, data: "new" });
    expect(await reconciler.reconcile(unit)).toEqual({ kind: "done", result: "written" });
    expect(await read("otp")).toBe("new");
    expect(fake.served(second, 1)).toBe(1);
  });
});
