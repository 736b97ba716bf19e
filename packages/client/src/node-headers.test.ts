import { describe, expect, it } from "vitest";
import { Headers } from "./node-headers.ts";

/**
 * A Headers class, ours or Node's, typed as ours: the DOM library of this
 * workspace's TypeScript settings declares no iterators on Headers.
 */
type HeadersClass = new (init?: unknown) => Headers;

/** Node's own Headers (undici's), which ours must behave like. */
const NodeHeaders = globalThis.Headers as unknown as HeadersClass;
const OurHeaders = Headers as unknown as HeadersClass;

/** Everything a caller can observe of a header list. */
function observe(h: Headers, names: string[]) {
  const forEach: [string, string][] = [];
  h.forEach((value, name) => {
    forEach.push([name, value]);
  });
  return {
    entries: [...h],
    keys: [...h.keys()],
    values: [...h.values()],
    forEach,
    get: names.map((n) => h.get(n)),
    has: names.map((n) => h.has(n)),
    setCookie: h.getSetCookie(),
  };
}

/** The outcome of `f`: its result, or the class of what it threw. */
function outcome<T>(f: () => T): { ok: T } | { threw: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { threw: (err as Error).constructor.name };
  }
}

function both<T>(f: (H: HeadersClass) => T) {
  return { ours: outcome(() => f(OurHeaders)), node: outcome(() => f(NodeHeaders)) };
}

describe("Headers", () => {
  it("is the real Headers that the test compares against", () => {
    expect(NodeHeaders).not.toBe(OurHeaders);
    expect(new NodeHeaders()).toBeInstanceOf(NodeHeaders);
  });

  it("compares names without case, joins appended values, answers null for a missing name", () => {
    const { ours, node } = both((H) => {
      const h = new H();
      h.append("Grpc-Status", "0");
      h.append("x-multi", "a");
      h.append("X-MULTI", "b");
      h.set("Content-Type", "application/connect+proto");
      return {
        status: h.get("grpc-status"),
        multi: h.get("x-Multi"),
        type: h.get("CONTENT-TYPE"),
        missing: h.get("nope"),
        has: [h.has("GRPC-STATUS"), h.has("nope")],
      };
    });
    expect(ours).toEqual(node);
    expect(ours).toEqual({
      ok: {
        status: "0",
        multi: "a, b",
        type: "application/connect+proto",
        missing: null,
        has: [true, false],
      },
    });
  });

  it("iterates sorted by lower-case name, with set-cookie values apart", () => {
    const names = ["set-cookie", "b", "a", "z"];
    const { ours, node } = both((H) => {
      const h = new H([
        ["Z", "1"],
        ["Set-Cookie", "a=1"],
        ["b", "2"],
        ["set-cookie", "b=2"],
        ["A", "3"],
        ["b", "4"],
      ]);
      return observe(h, names);
    });
    expect(ours).toEqual(node);
    expect(ours).toMatchObject({
      ok: {
        entries: [
          ["a", "3"],
          ["b", "2, 4"],
          ["set-cookie", "a=1"],
          ["set-cookie", "b=2"],
          ["z", "1"],
        ],
        get: ["a=1, b=2", "2, 4", "3", "1"],
        setCookie: ["a=1", "b=2"],
      },
    });
  });

  it("is built from a Headers, a list of pairs, a record, or nothing", () => {
    const names = ["a", "b", "c"];
    const inits: [string, (H: HeadersClass) => unknown][] = [
      ["nothing", () => undefined],
      [
        "a Headers of its own kind",
        (H) =>
          new H([
            ["a", "1"],
            ["A", "2"],
          ]),
      ],
      [
        "pairs",
        () => [
          ["b", "1"],
          ["a", "2"],
        ],
      ],
      ["a record", () => ({ C: "1", a: "2", b: " padded\t" })],
      ["a Map", () => new Map([["c", "3"]])],
      ["an empty record", () => ({})],
      ["null", () => null],
      ["a string", () => "a: 1"],
      ["a number", () => 1],
      ["a pair of one", () => [["a"]]],
      ["a pair of three", () => [["a", "1", "2"]]],
      ["a pair that is not a list", () => [1]],
    ];
    for (const [what, init] of inits) {
      const { ours, node } = both((H) => observe(new H(init(H)), names));
      expect(ours, what).toEqual(node);
    }
  });

  it("takes a Headers of the other kind (connect copies whatever it is given)", () => {
    const node = new NodeHeaders({ a: "1", "set-cookie": "x" });
    node.append("set-cookie", "y");
    const ours = new OurHeaders(node);
    expect(observe(ours, ["a", "set-cookie"])).toEqual(observe(node, ["a", "set-cookie"]));
    expect(observe(new NodeHeaders(ours), ["a"])).toEqual(observe(ours, ["a"]));
  });

  it("trims values and refuses invalid names and values as Node does", () => {
    const cases: [string, string][] = [
      ["x", "  a b  "],
      ["x", "\t\r\n a \n"],
      ["x", ""],
      ["x", "a\nb"],
      ["x", "a\rb"],
      ["x", "a\0b"],
      ["x", "ÿ"],
      ["x", "Ā"],
      ["", "a"],
      ["a b", "a"],
      ["a:b", "a"],
      ["ñ", "a"],
      ["!#$%&'*+-.^_`|~09azAZ", "a"],
      ["x-bin", "AAEC"],
    ];
    for (const [name, value] of cases) {
      for (const method of ["append", "set"] as const) {
        const { ours, node } = both((H) => {
          const h = new H();
          h[method](name, value);
          return [...h];
        });
        expect(ours, `${method}(${JSON.stringify(name)}, ${JSON.stringify(value)})`).toEqual(node);
      }
      for (const method of ["get", "has", "delete"] as const) {
        const { ours, node } = both((H) => new H({ x: "1" })[method](name));
        expect(ours, `${method}(${JSON.stringify(name)})`).toEqual(node);
      }
    }
  });

  it("follows the same list as Node's through any sequence of changes", () => {
    // A fixed pseudo-random walk (mulberry32), so that a failure reproduces.
    let seed = 0x5eed;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    const names = ["a", "A", "b", "Set-Cookie", "set-cookie", "grpc-status", "x-Y", "bad name"];
    const values = ["1", " 2 ", "a, b", "", "x=y; Path=/", "bad\nvalue"];
    for (let walk = 0; walk < 200; walk++) {
      const ours = new OurHeaders();
      const node = new NodeHeaders();
      for (let step = 0; step < 12; step++) {
        const op = pick(["append", "set", "delete"] as const);
        const name = pick(names);
        const value = pick(values);
        const run = (h: Headers) =>
          outcome(() => (op === "delete" ? h.delete(name) : h[op](name, value)));
        expect(run(ours), `walk ${walk} step ${step}`).toEqual(run(node));
        expect(observe(ours, names.slice(0, -1))).toEqual(observe(node, names.slice(0, -1)));
      }
    }
  });

  it("iterates the list as it is at each step, as the standard's iterator does", () => {
    const { ours, node } = both((H) => {
      const h = new H({ b: "1", d: "2" });
      const seen: string[] = [];
      for (const [name] of h) {
        seen.push(name);
        if (name === "b") h.append("c", "3");
      }
      h.forEach((_v, name) => {
        seen.push(name);
        if (name === "b") h.delete("c");
      });
      return seen;
    });
    expect(ours).toEqual(node);
  });

  it("names itself as Headers and refuses a forEach without a function", () => {
    const { ours, node } = both((H) => ({
      tag: Object.prototype.toString.call(new H()),
      name: H.name,
      bad: outcome(() => new H().forEach(1 as unknown as () => void)),
    }));
    expect(ours).toEqual(node);
  });
});
