import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { PeerLimiter, peerAddress } from "./peer-limit.ts";

describe("peerAddress", () => {
  it("drops the port, so that each new connection is the same caller", () => {
    expect(peerAddress("127.0.0.1:50123")).toBe("127.0.0.1");
    expect(peerAddress("127.0.0.1:50124")).toBe("127.0.0.1");
    expect(peerAddress("::ffff:10.0.0.7:443")).toBe("10.0.0.7");
    expect(peerAddress("::1:5000")).toBe("0:0:0:0::/64");
    expect(peerAddress("[::1]:5000")).toBe("0:0:0:0::/64");
    expect(peerAddress(undefined)).toBe("unknown");
  });

  it("takes an IPv6 address's /64, which one host commonly holds whole", () => {
    expect(peerAddress("2001:db8:1:2:aaaa::1:40000")).toBe("2001:db8:1:2::/64");
    expect(peerAddress("2001:db8:1:2:bbbb:cccc:dddd:eeee:40001")).toBe("2001:db8:1:2::/64");
    expect(peerAddress("2001:0db8:0001:0003::9:1")).toBe("2001:db8:1:3::/64");
  });
});

function fakeClock() {
  let t = 1_000;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe("PeerLimiter", () => {
  it("admits a burst of twice the rate per address, then refuses with RESOURCE_EXHAUSTED naming the setting", () => {
    const clock = fakeClock();
    const limiter = new PeerLimiter({ ratePerSecond: 5, now: clock.now });
    for (let i = 0; i < 10; i++) limiter.admit(`10.0.0.1:${1000 + i}`);
    expect(() => limiter.admit("10.0.0.1:2000")).toThrow(
      expect.objectContaining({
        code: Code.ResourceExhausted,
        rawMessage: expect.stringContaining("COFFER_PEER_RATE_LIMIT_RPS"),
      }),
    );
    // Another address has its own bucket.
    limiter.admit("10.0.0.2:1000");
    clock.advance(200);
    limiter.admit("10.0.0.1:3000");
  });

  it("gives back what a valid token took", () => {
    const limiter = new PeerLimiter({ ratePerSecond: 1, now: fakeClock().now });
    for (let i = 0; i < 100; i++) {
      limiter.admit("10.0.0.1:1");
      limiter.refund("10.0.0.1:1");
    }
    limiter.admit("10.0.0.1:1");
  });

  it("tracks a bounded number of addresses", () => {
    const limiter = new PeerLimiter({ ratePerSecond: 1, maxPeers: 100, now: fakeClock().now });
    for (let i = 0; i < 1_000; i++) limiter.admit(`10.0.${i >> 8}.${i & 255}:1`);
    expect(limiter.size).toBe(100);
  });
});
