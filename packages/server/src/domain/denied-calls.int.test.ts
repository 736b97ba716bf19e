import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../db/schema.ts";
import { backends } from "../testing/backends.ts";
import { databasesFor } from "../testing/domain-helpers.ts";
import type { DomainDeps } from "./context.ts";
import { type DeniedCall, DeniedCalls, MAX_WINDOWS_PER_ADDRESS, VARIOUS } from "./denied-calls.ts";

const M = "coffer.secretmanager.v1.SecretService/GetSecret";

describe.each(backends)("aggregated refusals on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());

  function setUp() {
    let t = Date.UTC(2026, 0, 1, 12, 0, 5);
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _e, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    const audit: Record<string, unknown>[] = [];
    const denied = new DeniedCalls(domain, {
      logger: pino({ level: "info" }, sink),
      auditLog: { write: (l) => void audit.push({ ...l }), close: async () => {} },
      flushMs: 3_600_000,
      now: () => t,
    });
    return {
      denied,
      lines,
      audit,
      advance: (ms: number) => {
        t += ms;
      },
    };
  }
  const call = (i: number, over: Partial<DeniedCall> = {}): DeniedCall => ({
    method: M,
    outcome: "UNAUTHENTICATED",
    requestId: `req-${i}`,
    address: "192.0.2.1",
    tokenPrefix: "coffer_abcd",
    ...over,
  });
  const rowsOf = async (address: string) =>
    (await dbs.db().select().from(auditEvents)).filter((r) => r.peer === address);

  it("writes one row per minute with the count, the first call's request id, and one summary line", async () => {
    const { denied, lines, audit, advance } = setUp();
    const address = "192.0.2.10";
    const firsts: boolean[] = [];
    for (let i = 0; i < 100; i++) firsts.push(await denied.record(call(i, { address })));
    expect(firsts.filter(Boolean)).toHaveLength(1);
    await denied.flush();
    let rows = await rowsOf(address);
    expect(rows.map((r) => [r.count, r.requestId, r.tokenPrefix, r.method])).toEqual([
      [100, "req-0", "coffer_abcd", M],
    ]);
    // The next minute is another row; the closed one gets its summary line.
    advance(60_000);
    await denied.record(call(100, { address }));
    await denied.record(call(101, { address }));
    await denied.flush();
    rows = await rowsOf(address);
    expect(rows.map((r) => r.count).sort()).toEqual([100, 2]);
    const summaries = lines.filter((l) => l.msg === "refused calls (aggregated)");
    expect(summaries).toEqual([expect.objectContaining({ count: 100, peer: address })]);
    await denied.close();
    expect(lines.filter((l) => l.msg === "refused calls (aggregated)")).toHaveLength(2);
    // The audit log copy: each window's first line, then its final count.
    expect(audit.map((l) => [l.request_id, l.count])).toEqual([
      ["req-0", 1],
      ["req-100", 1],
      ["req-0", 100],
      ["req-100", 2],
    ]);
  });

  it("caps the windows one address opens in a minute, the rest counted under *", async () => {
    const { denied } = setUp();
    const address = "192.0.2.20";
    for (let i = 0; i < 500; i++) {
      await denied.record(
        call(i, { address, tokenPrefix: `coffer_${String(i).padStart(4, "0")}` }),
      );
    }
    await denied.close();
    const rows = await rowsOf(address);
    expect(rows).toHaveLength(MAX_WINDOWS_PER_ADDRESS + 1);
    expect(rows.reduce((n, r) => n + r.count, 0)).toBe(500);
    const various = rows.find((r) => r.method === VARIOUS);
    expect(various?.tokenPrefix).toBe(VARIOUS);
    expect(various?.count).toBe(500 - MAX_WINDOWS_PER_ADDRESS);
  });
});
