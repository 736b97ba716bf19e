import { afterEach, describe, expect, it } from "vitest";
import {
  type DatabaseProbe,
  HealthStatus,
  type ProbeResult,
  startDatabaseProbe,
} from "./health.ts";

const SERVICE = "coffer.secretmanager.v1.SecretService";

/** Takes the next `n` statuses a watch yields, failing after 2 s instead of hanging. */
async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const next = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no status ${i + 1} within 2 s`)), 2_000),
      ),
    ]);
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

describe("HealthStatus", () => {
  it("serves the whole server and each service only while every region serves", () => {
    const health = new HealthStatus(["fr-par", "nl-ams"], [SERVICE]);
    // Nothing probed yet: not serving.
    expect(health.get("")).toBe("NOT_SERVING");
    health.setRegion("fr-par", true);
    expect(health.get("")).toBe("NOT_SERVING");
    expect(health.get("coffer.region.fr-par")).toBe("SERVING");
    health.setRegion("nl-ams", true);
    expect(Object.fromEntries(health.all())).toEqual({
      "": "SERVING",
      [SERVICE]: "SERVING",
      "coffer.region.fr-par": "SERVING",
      "coffer.region.nl-ams": "SERVING",
    });
    health.setRegion("nl-ams", false);
    expect(health.get("")).toBe("NOT_SERVING");
    expect(health.get(SERVICE)).toBe("NOT_SERVING");
    expect(health.get("coffer.region.fr-par")).toBe("SERVING");
    expect(health.get("coffer.region.nl-ams")).toBe("NOT_SERVING");
    expect(health.get("coffer.region.nowhere")).toBeUndefined();
    expect(health.get("coffer.admin.v1.Nope")).toBeUndefined();
  });

  it("is NOT_SERVING everywhere for good after shutdown", () => {
    const health = new HealthStatus(["local"], [SERVICE]);
    health.setRegion("local", true);
    health.shutdown();
    health.setRegion("local", true);
    expect([...health.all().values()]).toEqual(["NOT_SERVING", "NOT_SERVING", "NOT_SERVING"]);
  });

  it("watch: the status now, each change once, then NOT_SERVING and the end at shutdown", async () => {
    const health = new HealthStatus(["local"], [SERVICE]);
    health.setRegion("local", true);
    const watch = health.watch("", new AbortController().signal);
    expect(await take(watch, 1)).toEqual(["SERVING"]);
    health.setRegion("local", true); // no change: nothing sent
    health.setRegion("local", false);
    expect(await take(watch, 1)).toEqual(["NOT_SERVING"]);
    health.setRegion("local", true);
    expect(await take(watch, 1)).toEqual(["SERVING"]);
    health.shutdown();
    expect(await take(watch, 2)).toEqual(["NOT_SERVING"]);
    expect((await watch.next()).done).toBe(true);
  });

  it("watch: an unknown name is SERVICE_UNKNOWN and the watch stays open until aborted", async () => {
    const health = new HealthStatus(["local"], [SERVICE]);
    const abort = new AbortController();
    const watch = health.watch("no.such.Service", abort.signal);
    expect(await take(watch, 1)).toEqual(["SERVICE_UNKNOWN"]);
    health.setRegion("local", true);
    const next = watch.next();
    abort.abort();
    expect((await next).done).toBe(true);
  });
});

describe("startDatabaseProbe", () => {
  let probe: DatabaseProbe | undefined;
  afterEach(async () => {
    await probe?.stop();
    probe = undefined;
  });

  it("reports the first round before it resolves, then each ping; a failure, a throw or a hang is down", async () => {
    let answer: "up" | "down" | "throw" | "hang" = "up";
    const results: ProbeResult[] = [];
    const database = {
      ping: () => {
        if (answer === "throw") return Promise.reject(new Error("connection refused"));
        if (answer === "hang") return new Promise<boolean>(() => {});
        return Promise.resolve(answer === "up");
      },
    };
    probe = await startDatabaseProbe([{ name: "local", database }], 20, (r) => results.push(r), 50);
    expect(results).toEqual([{ region: "local", up: true, seconds: expect.any(Number) }]);
    const until = async (up: boolean) => {
      const from = results.length;
      for (let i = 0; i < 200; i++) {
        const last = results.at(-1);
        if (results.length > from && last?.up === up) return last;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no ping with up=${up} within 2 s`);
    };
    for (const failure of ["down", "throw", "hang"] as const) {
      answer = failure;
      const down = await until(false);
      if (failure === "hang") expect(down.seconds).toBeGreaterThanOrEqual(0.045);
      answer = "up";
      await until(true);
    }
    await probe.stop();
    const count = results.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(results.length).toBe(count);
  });
});
