import { create, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { AdminService, AuthService, SecretService } from "@coffer/api";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.ts";
import { createTestToken, startTestServer } from "../testing/backends.ts";
import { testTransport } from "../testing/clients.ts";

/**
 * Postgres text cannot hold U+0000, and a lone surrogate has no UTF-8 form:
 * every string field of every request that holds one is refused as
 * INVALID_ARGUMENT naming that field, before it can reach the database (where
 * a NUL used to fail the statement and come back INTERNAL).
 */

let server: RunningServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer();
  token = (
    await createTestToken(server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
  ).value;
});
afterAll(() => server?.stop());

/** Every path to a string field, e.g. ["first_version", "description"], down to nested messages. */
function stringPaths(desc: DescMessage, depth = 0): DescField[][] {
  if (depth > 3) return [];
  const paths: DescField[][] = [];
  for (const field of desc.fields) {
    if (field.fieldKind === "scalar" && field.scalar === 9 /* STRING */) paths.push([field]);
    if (field.fieldKind === "list" && field.listKind === "scalar" && field.scalar === 9) {
      paths.push([field]);
    }
    const sub =
      field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")
        ? field.message
        : undefined;
    if (sub !== undefined && !sub.typeName.startsWith("google.protobuf.")) {
      for (const rest of stringPaths(sub, depth + 1)) paths.push([field, ...rest]);
    }
  }
  return paths;
}

/** A request with `value` at `path` (a list gets one element), and the field name the server must name. */
function requestWith(desc: DescMessage, path: DescField[], value: string) {
  const root = create(desc);
  let msg: ReflectMessage = reflect(desc, root as Message);
  const names: string[] = [];
  for (const [i, field] of path.entries()) {
    const last = i === path.length - 1;
    if (field.fieldKind === "list") {
      names.push(`${field.name}[0]`);
      const list = msg.get(field);
      if (last) {
        list.add(value);
      } else {
        const sub = reflect(field.message as DescMessage);
        list.add(sub);
        msg = sub;
      }
    } else if (field.fieldKind === "message") {
      names.push(field.name);
      const sub = reflect(field.message);
      msg.set(field, sub);
      msg = sub;
    } else {
      names.push(field.name);
      msg.set(field, value);
    }
  }
  return { request: root, field: names.join(".") };
}

const cases = [SecretService, AdminService, AuthService].flatMap((service) =>
  service.methods.flatMap((method) =>
    stringPaths(method.input).map((path) => ({ service, method, path })),
  ),
);

describe.each(["grpc", "connect"] as const)("over %s", (protocol) => {
  const call = async (
    service: typeof SecretService | typeof AdminService | typeof AuthService,
    method: string,
    request: unknown,
  ): Promise<ConnectError | undefined> => {
    const port = protocol === "grpc" ? server.grpcPort : server.httpPort;
    const transport = testTransport({ url: `http://127.0.0.1:${port}`, protocol, token });
    const client = createClient(service, transport) as unknown as Record<
      string,
      (req: unknown, o?: object) => unknown
    >;
    try {
      const res = client[method]?.(request, { signal: AbortSignal.timeout(10_000) });
      if (res !== null && typeof res === "object" && Symbol.asyncIterator in res) {
        for await (const _ of res as AsyncIterable<unknown>) break;
      } else {
        await res;
      }
      return undefined;
    } catch (e) {
      return ConnectError.from(e);
    }
  };

  it("covers the text fields the probe found", () => {
    const names = cases.map((c) => `${c.method.name}.${c.path.map((f) => f.name).join(".")}`);
    for (const expected of [
      "CreateSecret.description",
      "CreateSecret.first_version.description",
      "UpdateSecret.description",
      "CreateSecretVersion.description",
      "UpdateSecretVersion.description",
      "ListAuditEvents.method",
      "CreateProject.name",
      "WatchSecrets.selectors.location.path",
    ]) {
      expect(names).toContain(expected);
    }
  });

  it.each(cases.map((c) => [`${c.method.name}: ${c.path.map((f) => f.name).join(".")}`, c]))(
    "a NUL in %s is INVALID_ARGUMENT naming the field",
    async (_, { service, method, path }) => {
      const { request, field } = requestWith(method.input, path, "a\u0000b");
      const err = await call(service, method.localName, request);
      expect(err?.code, err?.rawMessage).toBe(Code.InvalidArgument);
      const rule = "must not contain the NUL character (U+0000) (found at position 2)";
      expect(err?.rawMessage).toBe(`${field}: ${rule}`);
      // The same field path and rule, apart, as a google.rpc.BadRequest detail.
      const violations = err?.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
      expect(violations?.map(({ field, description }) => ({ field, description }))).toEqual([
        { field, description: rule },
      ]);
    },
  );
});

describe("lone surrogates", () => {
  // JSON is the one encoding that can spell a lone surrogate ("\ud800");
  // protobuf-es refuses it while decoding, and binary protobuf turns invalid
  // UTF-8 into U+FFFD, so none reaches a handler. validateText refuses them
  // too (validation.test.ts), for any path that does not decode protobuf.
  it("are refused over Connect JSON, which can carry them", async () => {
    const res = await fetch(
      `http://127.0.0.1:${server.httpPort}/coffer.secretmanager.v1.SecretService/CreateSecret`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: '{"projectId":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"x","description":"ab\\ud800c"}',
      },
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      code: "invalid_argument",
      message:
        "cannot decode field coffer.secretmanager.v1.CreateSecretRequest.description from JSON: expected string: invalid UTF8",
    });
  });
});
