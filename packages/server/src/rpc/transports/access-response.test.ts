import { randomBytes } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { AccessSecretVersionResponseSchema, SecretType } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { encodeAccessResponse } from "./access-response.ts";

type Init = Parameters<typeof encodeAccessResponse>[0];

const reference = (init: Init) =>
  Buffer.from(
    toBinary(AccessSecretVersionResponseSchema, create(AccessSecretVersionResponseSchema, init)),
  );

/** Values at the edges of each varint length, and of uint32. */
const EDGES = [
  0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455, 268_435_456, 0xffffffff,
];

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;

function randomInit(): Init {
  const ids = ["", "0193a0b2-7c1e-7f00-8a00-123456789abc", "é", "秘密", "a".repeat(200)];
  const sizes = [0, 1, 127, 128, 1024, 16_384, 70_000];
  const init: Init = {};
  if (Math.random() < 0.9) init.secretId = pick(ids);
  if (Math.random() < 0.9) init.revision = pick(EDGES);
  if (Math.random() < 0.9) init.data = randomBytes(pick(sizes));
  if (Math.random() < 0.9) init.dataCrc32 = pick(EDGES);
  if (Math.random() < 0.9) init.type = pick([0, 1, 2, 3, 127, 128]) as SecretType;
  if (Math.random() < 0.9) init.singleAccess = Math.random() < 0.5;
  return init;
}

describe("encodeAccessResponse", () => {
  it("writes what protobuf-es's toBinary writes, byte for byte, for init objects and messages", () => {
    for (let i = 0; i < 2_000; i++) {
      const init = randomInit();
      const expected = reference(init);
      expect(encodeAccessResponse(init)?.equals(expected), JSON.stringify(Object.keys(init))).toBe(
        true,
      );
      const message = create(AccessSecretVersionResponseSchema, init);
      expect(encodeAccessResponse(message)?.equals(expected)).toBe(true);
    }
  });

  it("writes the empty message as no bytes, as toBinary does", () => {
    expect(encodeAccessResponse({})?.length).toBe(0);
    expect(reference({}).length).toBe(0);
  });

  it("leaves to toBinary what it must refuse or carry: values out of range, unknown fields", () => {
    for (const bad of [-1, 0x1_0000_0000, 1.5, Number.NaN]) {
      expect(encodeAccessResponse({ revision: bad })).toBeUndefined();
      expect(encodeAccessResponse({ dataCrc32: bad })).toBeUndefined();
    }
    expect(encodeAccessResponse({ type: -1 as SecretType })).toBeUndefined();
    const withUnknown = create(AccessSecretVersionResponseSchema, { revision: 3 });
    withUnknown.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    expect(encodeAccessResponse(withUnknown)).toBeUndefined();
    expect(encodeAccessResponse({ type: SecretType.OPAQUE })).toBeDefined();
  });
});
