import { randomUUID } from "node:crypto";
import { create, type DescMessage, toJsonString } from "@bufbuild/protobuf";
import { AdminService, EphemeralAction, Role, SecretService, SecretType } from "@coffer/api";
import { type CallOptions, Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALL_TYPES,
  anyCrc,
  anyDescription,
  anyDuration,
  anyEnum,
  anyName,
  anyPage,
  anyPageSize,
  anyPath,
  anyPayload,
  anyPolicy,
  anyRegion,
  anyRevision,
  anyTags,
  anyText,
  anyTimestamp,
  badDescription,
  badName,
  badPath,
  badPayload,
  badRevision,
  badTags,
  badUuid,
  CONTROL_CHARS,
  controlText,
  PAYLOAD_MARKER,
  validDescription,
  validName,
  validPath,
  validPayload,
  validTags,
  validUuid,
} from "./arbitraries.ts";
import {
  type Clients,
  clientsFor,
  FUZZ_SEED,
  type FuzzServer,
  MAX_RSS_GROWTH_BYTES,
  rssBytes,
  sleep,
  startFuzzServer,
} from "./support.ts";

/**
 * Property-based requests (fast-check) for every SecretService and
 * AdminService method, over every field and every boundary of every rule,
 * each sent twice: over gRPC (to grpc-js) and over one of Connect JSON on
 * HTTP/2, gRPC-Web binary on HTTP/1.1 or Connect JSON on HTTP/1.1 (to
 * connect-node). Every answer must be OK or a clean error: never INTERNAL or
 * UNKNOWN, an INVALID_ARGUMENT names a field of the request, and no message
 * holds a payload marker or a token. Requests that break a rule must change
 * nothing in the database.
 */

type Service = "secrets" | "admin";
type Request = Record<string, unknown>;
type Unary = (req: unknown, options?: CallOptions) => Promise<unknown>;
type Streaming = (req: unknown, options?: CallOptions) => AsyncIterable<unknown>;

/** The wire names of every field of a message and of the messages inside it. */
function fieldNames(message: DescMessage, into = new Set<string>()): Set<string> {
  for (const field of message.fields) {
    if (into.has(`${message.typeName}.${field.name}`)) continue;
    into.add(`${message.typeName}.${field.name}`);
    into.add(field.name);
    if (field.message !== undefined) fieldNames(field.message, into);
  }
  return into;
}

function inputOf(service: Service, method: string): DescMessage {
  const desc = service === "secrets" ? SecretService : AdminService;
  const m = (desc.method as Record<string, { input: DescMessage }>)[method];
  if (m === undefined) throw new Error(`no method ${method}`);
  return m.input;
}

let requestCount = 0;

/** Every string in a request (nested messages and lists included; never a oneof's case name). */
function stringSlots(
  value: unknown,
  into: { holder: Record<string, unknown> | unknown[]; key: string | number }[] = [],
) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (typeof item === "string") into.push({ holder: value, key: i });
      else stringSlots(item, into);
    });
  } else if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    for (const [key, item] of Object.entries(value)) {
      if (key === "case") continue;
      if (typeof item === "string") into.push({ holder: value as Record<string, unknown>, key });
      else stringSlots(item, into);
    }
  }
  return into;
}

/**
 * A request generator that, one time in four, puts a control character
 * (NUL included) into one of the request's strings, whichever field it is:
 * so every string field of every RPC meets NUL and the other controls, and
 * a field added later is covered without touching this file.
 */
function withControlChars(arb: fc.Arbitrary<Request>): fc.Arbitrary<Request> {
  return fc
    .tuple(
      arb,
      fc.option(
        fc.record({
          slot: fc.nat(),
          at: fc.nat(),
          char: fc.constantFrom(...CONTROL_CHARS),
        }),
        { nil: undefined, freq: 3 },
      ),
    )
    .map(([req, poison]) => {
      if (poison === undefined) return req;
      const copy = structuredClone(req);
      const slots = stringSlots(copy);
      const slot = slots[poison.slot % Math.max(slots.length, 1)];
      if (slot === undefined) return copy;
      const text = (slot.holder as Record<string | number, string>)[slot.key] ?? "";
      const at = poison.at % (text.length + 1);
      (slot.holder as Record<string | number, string>)[slot.key] =
        text.slice(0, at) + poison.char + text.slice(at);
      return copy;
    });
}

describe("fuzzed requests to every RPC", () => {
  let fuzz: FuzzServer;
  let authed: Clients[];
  let token: string;
  let projectId: string;
  const secretIds: { id: string; type: SecretType }[] = [];
  const secretNames: { path: string; name: string }[] = [];
  const tokenIds: string[] = [];
  let baselineRss = 0;

  /** Sends one request over one protocol; the error, or undefined for OK. */
  async function send(
    clients: Clients,
    service: Service,
    method: string,
    req: Request,
  ): Promise<ConnectError | undefined> {
    requestCount++;
    const client = (service === "secrets" ? clients.secrets : clients.admin) as unknown as Record<
      string,
      Unary | Streaming
    >;
    const fn = client[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    try {
      if (method === "watchSecrets") {
        // A valid watch starts with a heartbeat; the first message is enough.
        const signal = AbortSignal.timeout(15_000);
        for await (const _ of (fn as Streaming)(req, { signal })) break;
      } else {
        await (fn as Unary)(req);
      }
      return undefined;
    } catch (err) {
      return ConnectError.from(err);
    }
  }

  /** The checks every answer passes. */
  function checkAnswer(
    service: Service,
    method: string,
    via: string,
    err: ConnectError | undefined,
  ) {
    if (err === undefined) return;
    let where = `${method} over ${via}: ${Code[err.code]} ${err.rawMessage.slice(0, 300)}`;
    const requestId = /request id ([0-9a-f-]+)/.exec(err.rawMessage)?.[1];
    if (requestId !== undefined) {
      // The server logs the cause of an INTERNAL under its request id.
      const logged = fuzz.server.logs().filter((l) => JSON.stringify(l).includes(requestId));
      where += `\nserver log: ${JSON.stringify(logged).slice(0, 2000)}`;
    }
    expect(
      [Code.Internal, Code.Unknown, Code.Canceled, Code.DeadlineExceeded],
      where,
    ).not.toContain(err.code);
    expect(err.rawMessage, where).not.toContain(PAYLOAD_MARKER);
    expect(err.rawMessage, where).not.toContain(token);
    expect(err.rawMessage, where).not.toContain(token.slice(7, 30));
    if (err.code === Code.InvalidArgument) {
      // A JSON body the decoder refuses (a lone surrogate in a string) is
      // named by its full field name: "cannot decode field pkg.Message.field from JSON".
      const root =
        /^([a-z][a-z0-9_]*)[^\s]*: /.exec(err.rawMessage)?.[1] ??
        /^cannot decode field [A-Za-z0-9_.]+\.([a-z][a-z0-9_]*) from JSON/.exec(
          err.rawMessage,
        )?.[1];
      expect(root, `${where}: the message must start with a field name`).toBeDefined();
      expect([...fieldNames(inputOf(service, method))], where).toContain(root);
    }
  }

  let rotation = 0;
  /** Sends over gRPC and one connect-node protocol; returns both errors. */
  async function sendBoth(
    service: Service,
    method: string,
    req: Request,
    clientsList = authed,
  ): Promise<{ grpc: ConnectError | undefined; other: ConnectError | undefined }> {
    const [grpc, ...others] = clientsList;
    if (grpc === undefined) throw new Error("no clients");
    let other = others[rotation++ % others.length] ?? grpc;
    if (other.label.startsWith("connect")) {
      // Connect here speaks JSON, which cannot carry out-of-range durations
      // or timestamps: those go as gRPC-Web binary instead.
      try {
        const input = inputOf(service, method);
        toJsonString(input, create(input, req as never));
      } catch {
        other = others.find((c) => c.label === "grpc-web-h1") ?? grpc;
      }
    }
    const [a, b] = await Promise.all([
      send(grpc, service, method, req),
      send(other, service, method, req),
    ]);
    checkAnswer(service, method, grpc.label, a);
    checkAnswer(service, method, other.label, b);
    return { grpc: a, other: b };
  }

  beforeAll(async () => {
    console.log(`fuzz seed ${FUZZ_SEED} (set FUZZ_SEED to change it)`);
    fuzz = await startFuzzServer("req");
    token = fuzz.server.token;
    authed = clientsFor(fuzz.server, token);
    const grpc = authed[0];
    if (grpc === undefined) throw new Error("no clients");
    const project = await grpc.admin.createProject({ name: "fuzz" });
    projectId = project.project?.id ?? "";
    for (const type of ALL_TYPES) {
      for (const [i, policy] of [
        undefined,
        { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
        { timeToLive: { seconds: 3600n, nanos: 0 }, action: EphemeralAction.DELETE },
      ].entries()) {
        const data = fc.sample(validPayload(type), { numRuns: 1, seed: FUZZ_SEED })[0];
        const name = `fx-${type}-${i}`;
        const res = await grpc.secrets.createSecret({
          projectId,
          path: "/fx",
          name,
          type,
          ...(policy && { ephemeralPolicy: policy }),
          ...(data && { firstVersion: { data } }),
        });
        secretIds.push({ id: res.secret?.id ?? "", type });
        secretNames.push({ path: "/fx", name });
      }
    }
    for (const role of [Role.READ_ONLY, Role.SECRET_ACCESS]) {
      const created = await grpc.admin.createToken({
        name: `fx-${role}`,
        grants: [{ projectId, role, pathPrefix: "/fx" }],
      });
      tokenIds.push(created.token?.id ?? "");
    }
    // Warm up (JIT, connection pools) before the memory baseline.
    for (let i = 0; i < 50; i++) {
      await sendBoth("secrets", "listSecrets", { projectId });
      await sendBoth("secrets", "createSecret", { projectId, name: "" });
    }
    await sleep(1000);
    baselineRss = await rssBytes(fuzz.server.pid);
  });

  afterAll(async () => {
    await fuzz?.stop();
  });

  const secretRef = () =>
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...secretIds) },
      { weight: 1, arbitrary: validUuid.map((id) => ({ id, type: SecretType.OPAQUE })) },
      { weight: 1, arbitrary: badUuid.map((id) => ({ id, type: SecretType.OPAQUE })) },
    );
  const project = () =>
    fc.oneof(
      { weight: 6, arbitrary: fc.constant(projectId) },
      { weight: 1, arbitrary: validUuid },
      { weight: 1, arbitrary: badUuid },
    );
  const etag = fc.oneof(
    { weight: 4, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: fc.constantFrom('"1"', '"999999"', "1", 'W/"1"', "x".repeat(500)) },
  );
  const label = fc.oneof(
    fc.string({ minLength: 1, maxLength: 20 }),
    controlText,
    fc.constantFrom(
      "",
      "   ",
      "x".repeat(255),
      "é".repeat(255),
      "x".repeat(256),
      "a\nb",
      "a\u0085",
    ),
  );
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  /** Mostly none; else garbage, control characters, or forged keys of every shape. */
  const anyPageToken = fc.oneof(
    { weight: 8, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 40 }), controlText) },
    {
      weight: 1,
      arbitrary: fc
        .record({
          v: fc.oneof(fc.constant(1), fc.integer()),
          q: fc.string({ maxLength: 24 }),
          k: fc.array(
            fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), controlText, fc.uuid()),
            {
              maxLength: 4,
            },
          ),
        })
        .map((t) => Buffer.from(JSON.stringify(t)).toString("base64url")),
    },
  );
  const region = anyRegion;

  /** A request generator for each method: [service, method, weight, arbitrary]. */
  function methods(): [Service, string, number, fc.Arbitrary<Request>][] {
    const issuerKeys = fc.oneof(
      fc.constant({ case: undefined }),
      fc.boolean().map((value) => ({ case: "discovery" as const, value })),
      fc
        .oneof(fc.constantFrom("https://k.example.com/jwks", "http://10.0.0.1/jwks"), anyText)
        .map((value) => ({ case: "jwksUrl" as const, value })),
      fc
        .oneof(
          fc.constantFrom(
            "",
            "{}",
            '{"keys":[]}',
            '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}',
            '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}',
            '{"keys":[{"kty":"EC","kid":"a\\u0000"}]}',
          ),
          anyText,
          fc.json(),
        )
        .map((value) => ({ case: "staticJwks" as const, value })),
    );
    const byRevision = (extra: Record<string, fc.Arbitrary<unknown>> = {}) =>
      fc.record({
        region,
        secretId: secretRef().map((s) => s.id),
        revision: anyRevision,
        etag,
        ...extra,
      });
    return [
      [
        "secrets",
        "createSecret",
        6,
        anyEnum(6).chain((type) =>
          fc.record({
            region,
            projectId: project(),
            name: anyName,
            path: anyPath,
            type: fc.constant(type),
            description: anyDescription,
            tags: anyTags,
            protected: fc.boolean(),
            ephemeralPolicy: anyPolicy,
            firstVersion: opt(
              anyPayload(type).chain((data) =>
                fc.record({
                  data: fc.constant(data),
                  dataCrc32: anyCrc(data),
                  description: anyDescription,
                }),
              ),
            ),
          }),
        ),
      ],
      ["secrets", "getSecret", 1, fc.record({ region, secretId: secretRef().map((s) => s.id) })],
      [
        "secrets",
        "updateSecret",
        4,
        fc.record({
          region,
          secretId: secretRef().map((s) => s.id),
          name: opt(anyName),
          path: opt(anyPath),
          description: opt(anyDescription),
          tags: opt(anyTags.map((values) => ({ values }))),
          ephemeralPolicy: anyPolicy,
          etag,
        }),
      ],
      [
        "secrets",
        "deleteSecret",
        1,
        fc.record({ region, secretId: secretRef().map((s) => s.id), etag }),
      ],
      [
        "secrets",
        "restoreSecret",
        1,
        fc.record({ region, secretId: secretRef().map((s) => s.id) }),
      ],
      [
        "secrets",
        "listSecrets",
        3,
        fc.record({
          region,
          projectId: fc.oneof(fc.constant(""), project()),
          name: opt(anyName),
          path: opt(anyPath),
          pathPrefix: opt(anyPath),
          tags: fc.array(fc.oneof(fc.constant("t"), ...[anyTags.map((t) => t[0] ?? "")]), {
            maxLength: 3,
          }),
          type: anyEnum(6),
          ephemeral: opt(fc.boolean()),
          protected: opt(fc.boolean()),
          scheduledForDeletion: opt(fc.boolean()),
          orderBy: anyEnum(6),
          page: anyPage,
          pageSize: anyPageSize,
          pageToken: anyPageToken,
        }),
      ],
      [
        "secrets",
        "browseSecrets",
        2,
        fc.record({
          region,
          projectId: project(),
          prefix: anyPath,
          page: anyPage,
          pageSize: anyPageSize,
          pageToken: anyPageToken,
        }),
      ],
      [
        "secrets",
        "protectSecret",
        1,
        fc.record({ region, secretId: secretRef().map((s) => s.id), etag }),
      ],
      [
        "secrets",
        "unprotectSecret",
        1,
        fc.record({ region, secretId: secretRef().map((s) => s.id), etag }),
      ],
      [
        "secrets",
        "listTags",
        1,
        fc.record({ region, projectId: project(), page: anyPage, pageSize: anyPageSize }),
      ],
      [
        "secrets",
        "listSecretTypes",
        1,
        fc.record({ region, projectId: project(), page: anyPage, pageSize: anyPageSize }),
      ],
      [
        "secrets",
        "createSecretVersion",
        6,
        secretRef().chain((s) =>
          anyPayload(s.type).chain((data) =>
            fc.record({
              region,
              secretId: fc.constant(s.id),
              data: fc.constant(data),
              dataCrc32: anyCrc(data),
              description: anyDescription,
              enabled: opt(fc.boolean()),
              disablePrevious: fc.boolean(),
              etag,
            }),
          ),
        ),
      ],
      ["secrets", "getSecretVersion", 1, byRevision()],
      [
        "secrets",
        "updateSecretVersion",
        3,
        byRevision({
          description: opt(anyDescription),
          ephemeralProperties: opt(
            fc.record(
              { expiresAt: anyTimestamp, expiresOnceAccessed: fc.boolean(), action: anyEnum(2) },
              { requiredKeys: [] },
            ),
          ),
        }),
      ],
      [
        "secrets",
        "listSecretVersions",
        2,
        fc.record({
          region,
          secretId: secretRef().map((s) => s.id),
          status: fc.array(anyEnum(4), { maxLength: 5 }),
          page: anyPage,
          pageSize: anyPageSize,
          pageToken: anyPageToken,
        }),
      ],
      [
        "secrets",
        "accessSecretVersion",
        2,
        fc.record({
          region,
          secretId: secretRef().map((s) => s.id),
          revision: anyRevision,
          noConsume: fc.boolean(),
        }),
      ],
      [
        "secrets",
        "accessSecretVersionByPath",
        2,
        fc
          .oneof(fc.constantFrom(...secretNames), fc.record({ path: anyPath, name: anyName }))
          .chain((loc) =>
            fc.record({
              region,
              projectId: project(),
              path: fc.constant(loc.path),
              name: fc.constant(loc.name),
              revision: anyRevision,
              noConsume: fc.boolean(),
            }),
          ),
      ],
      ["secrets", "enableSecretVersion", 1, byRevision()],
      ["secrets", "disableSecretVersion", 1, byRevision()],
      ["secrets", "deleteSecretVersion", 1, byRevision()],
      ["secrets", "restoreSecretVersion", 1, byRevision()],
      ["secrets", "destroySecretVersion", 1, byRevision()],
      [
        "secrets",
        "watchSecrets",
        2,
        fc.record({
          region,
          projectId: project(),
          selectors: fc.oneof(
            fc.array(
              fc.oneof(
                secretRef().map((s) => ({ selector: { case: "secretId", value: s.id } })),
                fc
                  .record({ path: anyPath, name: anyName })
                  .map((value) => ({ selector: { case: "location", value } })),
                anyPath.map((value) => ({ selector: { case: "pathPrefix", value } })),
                fc.constant({}),
              ),
              { maxLength: 4 },
            ),
            fc.constantFrom(1000, 1001).map((n) =>
              Array.from({ length: n }, (_, i) => ({
                selector: { case: "pathPrefix", value: `/p${i}` },
              })),
            ),
          ),
          sinceCursor: fc.oneof(
            fc.constant(""),
            fc.string({ maxLength: 40 }),
            fc.constantFrom("0", "x".repeat(2000), "AAAA", "-1:-1"),
          ),
          heartbeatInterval: opt(
            fc.oneof(
              anyDuration,
              fc.constantFrom(
                { seconds: 1n, nanos: 0 },
                { seconds: 0n, nanos: 999_999_999 },
                { seconds: 300n, nanos: 0 },
                { seconds: 300n, nanos: 1 },
              ),
            ),
          ),
        }),
      ],
      ["admin", "createProject", 1, fc.record({ name: label })],
      ["admin", "updateProject", 1, fc.record({ projectId: project(), name: label })],
      [
        "admin",
        "deleteProject",
        1,
        // Never the fuzz's own project: the other properties need it.
        fc.record({ projectId: fc.oneof(validUuid, badUuid), force: fc.boolean() }),
      ],
      ["admin", "listProjects", 1, fc.record({ page: anyPage, pageSize: anyPageSize })],
      [
        "admin",
        "createToken",
        3,
        fc.record({
          name: label,
          grants: fc.oneof(
            fc.array(
              fc.record({
                projectId: fc.oneof(fc.constant(""), project()),
                role: anyEnum(5),
                pathPrefix: fc.oneof(fc.constant(""), anyPath),
              }),
              { maxLength: 4 },
            ),
            fc.constantFrom(100, 101).map((n) =>
              Array.from({ length: n }, () => ({
                projectId,
                role: Role.READ_ONLY,
                pathPrefix: "/",
              })),
            ),
          ),
          expiresAt: opt(anyTimestamp),
        }),
      ],
      [
        "admin",
        "listTokens",
        1,
        fc.record({
          projectId: fc.oneof(fc.constant(""), project()),
          includeInactive: fc.boolean(),
          page: anyPage,
          pageSize: anyPageSize,
          pageToken: anyPageToken,
        }),
      ],
      [
        "admin",
        "revokeToken",
        1,
        fc.record({ tokenId: fc.oneof(fc.constantFrom(...tokenIds), validUuid, badUuid) }),
      ],
      [
        "admin",
        "listAuditEvents",
        2,
        fc.record({
          region,
          projectId: fc.oneof(fc.constant(""), project()),
          secretId: fc.oneof(
            fc.constant(""),
            secretRef().map((s) => s.id),
          ),
          tokenId: fc.oneof(fc.constant(""), fc.constantFrom(...tokenIds), badUuid),
          method: fc.oneof(
            fc.constantFrom(
              "",
              "coffer.secretmanager.v1.SecretService/GetSecret",
              "x".repeat(1000),
            ),
            anyText,
          ),
          outcome: fc.oneof(
            fc.constantFrom("", "OK", "NOT_FOUND", "ok", "x".repeat(300), "OK\u0000"),
            anyText,
          ),
          startTime: opt(anyTimestamp),
          endTime: opt(anyTimestamp),
          page: anyPage,
          pageSize: anyPageSize,
          pageToken: anyPageToken,
        }),
      ],
      [
        "admin",
        "createTrustedIssuer",
        2,
        fc.record({
          issuer: fc.record({
            name: label,
            issuerUrl: fc.oneof(
              fc.uuid().map((u) => `https://${u}.example.com`),
              fc.constantFrom("", "http://issuer.example.com", "http://127.0.0.1:9", "not a url"),
              anyText,
            ),
            audiences: fc.array(label, { maxLength: 22 }),
            keys: issuerKeys,
          }),
        }),
      ],
      [
        "admin",
        "listTrustedIssuers",
        1,
        fc.record({ page: anyPage, pageSize: anyPageSize, pageToken: anyPageToken }),
      ],
      [
        "admin",
        "updateTrustedIssuer",
        1,
        fc.record({
          issuerId: fc.oneof(validUuid, badUuid),
          name: opt(label),
          audiences: opt(fc.record({ audiences: fc.array(label, { maxLength: 22 }) })),
          keys: issuerKeys,
        }),
      ],
      ["admin", "deleteTrustedIssuer", 1, fc.record({ issuerId: fc.oneof(validUuid, badUuid) })],
      [
        "admin",
        "createIdentityBinding",
        2,
        fc.record({
          binding: fc.record({
            name: label,
            issuerId: fc.oneof(validUuid, badUuid),
            conditions: fc.array(
              fc.record({
                claim: fc.oneof(
                  fc.constantFrom("sub", "/kubernetes.io/namespace", "/a~2", ""),
                  anyText,
                ),
                value: fc.oneof(fc.constantFrom("prod", "*", ""), anyText),
                glob: fc.boolean(),
              }),
              { maxLength: 34 },
            ),
            grants: fc.array(
              fc.record({
                projectId: fc.oneof(fc.constant(""), project()),
                role: anyEnum(5),
                pathPrefix: fc.oneof(fc.constant(""), anyPath),
              }),
              { maxLength: 4 },
            ),
            tokenTtl: opt(anyDuration),
          }),
        }),
      ],
      [
        "admin",
        "listIdentityBindings",
        1,
        fc.record({
          issuerId: fc.oneof(fc.constant(""), validUuid, badUuid),
          projectId: fc.oneof(fc.constant(""), project()),
          page: anyPage,
          pageSize: anyPageSize,
          pageToken: anyPageToken,
        }),
      ],
      ["admin", "deleteIdentityBinding", 1, fc.record({ bindingId: fc.oneof(validUuid, badUuid) })],
      ["admin", "rotateMasterKey", 1, fc.constant({})],
      ["admin", "getCaller", 1, fc.constant({})],
      ["secrets", "listRegions", 1, fc.constant({})],
    ];
  }

  it("answers every generated request over gRPC and Connect with OK or a clean error", async () => {
    const table = methods().map(
      ([service, method, weight, arb]) =>
        [service, method, weight, withControlChars(arb)] as [
          Service,
          string,
          number,
          fc.Arbitrary<Request>,
        ],
    );
    const covered = new Set<string>();
    const anyCall = fc.oneof(
      ...table.map(([service, method, weight, arb]) => ({
        weight,
        arbitrary: arb.map((req) => ({ service, method, req })),
      })),
    );
    await fc.assert(
      fc.asyncProperty(anyCall, async ({ service, method, req }) => {
        covered.add(method);
        await sendBoth(service, method, req);
      }),
      { seed: FUZZ_SEED, numRuns: 3700 },
    );
    expect([...covered].sort()).toEqual(
      [...SecretService.methods, ...AdminService.methods].map((m) => m.localName).sort(),
    );
  }, 240_000);

  it("refuses a request that breaks one rule, naming that field, and changes nothing", async () => {
    // Fresh secrets: the first property may have deleted or locked the fixtures.
    const grpc = authed[0];
    if (grpc === undefined) throw new Error("no clients");
    const fresh: { id: string; type: SecretType }[] = [];
    for (const type of ALL_TYPES) {
      const data = fc.sample(validPayload(type), { numRuns: 1, seed: FUZZ_SEED })[0];
      const res = await grpc.secrets.createSecret({
        projectId,
        path: "/rejected",
        name: `t-${type}`,
        type,
        ...(data && { firstVersion: { data } }),
      });
      fresh.push({ id: res.secret?.id ?? "", type });
    }
    const before = await fuzz.snapshot();
    const aSecret = fc.constantFrom(...fresh);
    type Broken = { service: Service; method: string; field: string; req: Request };
    const broken = (service: Service, method: string, field: string, req: fc.Arbitrary<Request>) =>
      req.map((r): Broken => ({ service, method, field, req: r }));
    // A valid CreateSecret, then one field broken.
    const goodCreate = fc.constantFrom(...ALL_TYPES).chain((type) =>
      fc.record({
        projectId: fc.constant(projectId),
        name: validName.map((n) => `${n.slice(0, 200)}-${randomUUID()}`),
        path: validPath,
        type: fc.constant(type),
        description: validDescription,
        tags: validTags,
        firstVersion: validPayload(type).map((data) => ({ data })),
      }),
    );
    const createBroken = (field: string, mutate: fc.Arbitrary<(r: Request) => Request>) =>
      broken(
        "secrets",
        "createSecret",
        field,
        fc.tuple(goodCreate, mutate).map(([r, m]) => m(r)),
      );
    const set = <T>(key: string, a: fc.Arbitrary<T>) =>
      a.map((v) => (r: Request) => ({ ...r, [key]: v }));
    const cases = fc.oneof(
      createBroken("name", set("name", badName)),
      createBroken("path", set("path", badPath)),
      createBroken("tags", set("tags", badTags)),
      createBroken("description", set("description", badDescription)),
      broken(
        "secrets",
        "createSecret",
        "first_version.description",
        fc.tuple(goodCreate, badDescription).map(([r, description]) => ({
          ...r,
          firstVersion: { ...(r.firstVersion as object), description },
        })),
      ),
      broken(
        "secrets",
        "updateSecretVersion",
        "description",
        fc
          .tuple(aSecret, badDescription)
          .map(([s, description]) => ({ secretId: s.id, revision: "1", description })),
      ),
      broken(
        "admin",
        "listAuditEvents",
        "method",
        controlText.filter((m) => m.includes("\u0000")).map((method) => ({ method })),
      ),
      broken(
        "admin",
        "listAuditEvents",
        "method",
        fc.string({ maxLength: 10 }).map((m) => ({ method: `${m}\u0000` })),
      ),
      createBroken("project_id", set("projectId", badUuid)),
      createBroken("region", set("region", fc.constantFrom("mars", "x".repeat(3000)))),
      createBroken("type", set("type", fc.constantFrom(7, -1, 2 ** 31 - 1))),
      createBroken(
        "ephemeral_policy",
        set(
          "ephemeralPolicy",
          fc.constantFrom(
            { timeToLive: { seconds: 0n, nanos: 999_000_000 } },
            { timeToLive: { seconds: 31_536_001n, nanos: 0 } },
            { timeToLive: { seconds: -1n, nanos: 0 } },
            { expiresOnceAccessed: true, action: 3 },
            {},
          ),
        ),
      ),
      broken(
        "secrets",
        "createSecret",
        "first_version",
        goodCreate.chain((r) =>
          badPayload(r.type as SecretType).map((data) => ({ ...r, firstVersion: { data } })),
        ),
      ),
      broken(
        "secrets",
        "createSecret",
        "first_version",
        goodCreate.map((r) => {
          const fv = r.firstVersion as { data: Uint8Array };
          return { ...r, firstVersion: { ...fv, dataCrc32: 12345 } };
        }),
      ),
      broken(
        "secrets",
        "createSecretVersion",
        "data",
        aSecret.chain((s) => badPayload(s.type).map((data) => ({ secretId: s.id, data }))),
      ),
      broken(
        "secrets",
        "createSecretVersion",
        "description",
        aSecret.chain((s) =>
          fc
            .tuple(validPayload(s.type), badDescription)
            .map(([data, description]) => ({ secretId: s.id, data, description })),
        ),
      ),
      broken(
        "secrets",
        "createSecretVersion",
        "secret_id",
        badUuid.map((secretId) => ({ secretId, data: new Uint8Array([1]) })),
      ),
      broken(
        "secrets",
        "updateSecret",
        "name",
        fc.tuple(aSecret, badName).map(([s, name]) => ({ secretId: s.id, name })),
      ),
      broken(
        "secrets",
        "updateSecret",
        "path",
        fc.tuple(aSecret, badPath).map(([s, path]) => ({ secretId: s.id, path })),
      ),
      broken(
        "secrets",
        "updateSecret",
        "tags",
        fc.tuple(aSecret, badTags).map(([s, values]) => ({ secretId: s.id, tags: { values } })),
      ),
      broken(
        "secrets",
        "updateSecret",
        "description",
        fc
          .tuple(aSecret, badDescription)
          .map(([s, description]) => ({ secretId: s.id, description })),
      ),
      ...[
        "updateSecretVersion",
        "enableSecretVersion",
        "disableSecretVersion",
        "deleteSecretVersion",
        "restoreSecretVersion",
        "destroySecretVersion",
      ].map((method) =>
        broken(
          "secrets",
          method,
          "revision",
          fc.tuple(aSecret, badRevision).map(([s, revision]) => ({ secretId: s.id, revision })),
        ),
      ),
      ...["deleteSecret", "restoreSecret", "protectSecret", "unprotectSecret"].map((method) =>
        broken(
          "secrets",
          method,
          "secret_id",
          badUuid.map((secretId) => ({ secretId })),
        ),
      ),
      broken(
        "admin",
        "createProject",
        "name",
        fc
          .constantFrom("", "  ", "x".repeat(256), "é".repeat(256), "a\u0000b")
          .map((name) => ({ name })),
      ),
      broken(
        "admin",
        "createToken",
        "name",
        fc.constantFrom("", "\t", "x".repeat(256), "a\nb").map((name) => ({
          name,
          grants: [{ projectId, role: Role.READ_ONLY, pathPrefix: "/" }],
        })),
      ),
      broken(
        "admin",
        "createToken",
        "grants",
        fc.constantFrom(0, 101).map((n) => ({
          name: "t",
          grants: Array.from({ length: n }, () => ({
            projectId,
            role: Role.READ_ONLY,
            pathPrefix: "/",
          })),
        })),
      ),
      broken(
        "admin",
        "createToken",
        "grants",
        fc
          .oneof(
            badUuid
              .filter((u) => u !== "")
              .map((p) => ({ projectId: p, role: Role.READ_ONLY, pathPrefix: "/" })),
            badPath.map((pathPrefix) => ({ projectId, role: Role.READ_ONLY, pathPrefix })),
            fc.constantFrom(0, 6, -1).map((role) => ({ projectId, role, pathPrefix: "/" })),
            fc.constant({ projectId: "", role: Role.FULL_ACCESS, pathPrefix: "/" }),
          )
          .map((g) => ({ name: "t", grants: [g] })),
      ),
      broken(
        "admin",
        "createToken",
        "expires_at",
        fc.constant({
          name: "t",
          grants: [{ projectId, role: Role.READ_ONLY, pathPrefix: "/" }],
          expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) - 60), nanos: 0 },
        }),
      ),
      broken(
        "admin",
        "revokeToken",
        "token_id",
        badUuid.map((tokenId) => ({ tokenId })),
      ),
    );
    await fc.assert(
      fc.asyncProperty(cases, async ({ service, method, field, req }) => {
        const { grpc, other } = await sendBoth(service, method, req);
        for (const err of [grpc, other]) {
          const where = `${method} with a bad ${field}: ${err ? `${Code[err.code]} ${err.rawMessage.slice(0, 200)}` : "OK"}`;
          expect(err?.code, where).toBe(Code.InvalidArgument);
          expect(err?.rawMessage.startsWith(field), where).toBe(true);
        }
      }),
      { seed: FUZZ_SEED, numRuns: 1000 },
    );
    expect(await fuzz.snapshot()).toEqual(before);
  }, 180_000);

  it("refuses missing, malformed, revoked and foreign tokens, and changes nothing", async () => {
    const grpc = authed[0];
    if (grpc === undefined) throw new Error("no clients");
    // A token of another project, and a revoked one.
    const other = await grpc.admin.createProject({ name: `other-${randomUUID()}` });
    const foreign = await grpc.admin.createToken({
      name: "foreign",
      grants: [{ projectId: other.project?.id ?? "", role: Role.FULL_ACCESS, pathPrefix: "/" }],
    });
    const revoked = await grpc.admin.createToken({
      name: "revoked",
      grants: [{ projectId, role: Role.FULL_ACCESS, pathPrefix: "/" }],
    });
    await grpc.admin.revokeToken({ tokenId: revoked.token?.id ?? "" });
    const readOnly = await grpc.admin.createToken({
      name: "read-only",
      grants: [{ projectId, role: Role.READ_ONLY, pathPrefix: "/" }],
    });
    const tokens = [
      undefined,
      "",
      "garbage",
      `coffer_${"A".repeat(49)}`,
      `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`,
      token.toUpperCase(),
      foreign.value,
      revoked.value,
      readOnly.value,
    ];
    const clientSets = tokens.map((t) => clientsFor(fuzz.server, t));
    const before = await fuzz.snapshot();
    const secret = secretIds[0];
    if (secret === undefined) throw new Error("no fixture");
    const mutations: [Service, string, Request][] = [
      [
        "secrets",
        "createSecret",
        { projectId, name: `auth-${randomUUID()}`, firstVersion: { data: new Uint8Array([1]) } },
      ],
      ["secrets", "createSecretVersion", { secretId: secret.id, data: new Uint8Array([1]) }],
      ["secrets", "updateSecret", { secretId: secret.id, description: "changed" }],
      ["secrets", "deleteSecret", { secretId: secret.id }],
      ["secrets", "protectSecret", { secretId: secret.id }],
      ["secrets", "disableSecretVersion", { secretId: secret.id, revision: "1" }],
      ["admin", "createProject", { name: "p" }],
      [
        "admin",
        "createToken",
        { name: "t", grants: [{ projectId, role: Role.ADMIN, pathPrefix: "/" }] },
      ],
      ["admin", "revokeToken", { tokenId: tokenIds[0] ?? "" }],
      ["admin", "rotateMasterKey", {}],
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: tokens.length - 1 }),
        fc.constantFrom(...mutations),
        async (t, [service, method, req]) => {
          const clients = clientSets[t];
          if (clients === undefined) throw new Error("no clients");
          const { grpc: a, other: b } = await sendBoth(service, method, req, clients);
          for (const err of [a, b]) {
            expect(err, `${method} with token #${t}`).toBeDefined();
            expect([Code.Unauthenticated, Code.PermissionDenied, Code.NotFound]).toContain(
              err?.code,
            );
          }
        },
      ),
      { seed: FUZZ_SEED, numRuns: 300 },
    );
    expect(await fuzz.snapshot()).toEqual(before);
  }, 120_000);

  it("keeps the server up, its memory near its baseline, and counts at least 10,000 requests", async () => {
    // Still serving.
    const grpc = authed[0];
    await expect(grpc?.secrets.listSecrets({ projectId })).resolves.toBeDefined();
    expect(fuzz.server.exit).toBeUndefined();
    await sleep(3000);
    const rss = await rssBytes(fuzz.server.pid);
    console.log(
      `requests sent: ${requestCount}; server RSS ${Math.round(baselineRss / 2 ** 20)} MiB after warm-up, ${Math.round(rss / 2 ** 20)} MiB after the fuzz`,
    );
    expect(rss - baselineRss).toBeLessThan(MAX_RSS_GROWTH_BYTES);
    expect(requestCount).toBeGreaterThanOrEqual(10_000);
    // No payload marker or token in anything the server wrote.
    const output = fuzz.server.stdout + fuzz.server.stderr;
    expect(output).not.toContain(PAYLOAD_MARKER);
    expect(output).not.toContain(token.slice(7));
  });
});
