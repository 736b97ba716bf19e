import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  AdminService,
  SecretService,
  SecretType,
  type WatchSecretsRequest,
  type WatchSecretsResponseSchema,
} from "@coffer/api";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createRouterTransport,
  type HandlerContext,
  type Interceptor,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import { crc32 } from "./crc32.ts";

/**
 * A scripted Coffer for the client's unit tests: every unary RPC of
 * SecretService and AdminService answers (empty messages, or an access
 * answer), each call is recorded, and a fault function decides which calls
 * fail. Not part of the package's API.
 */

/** One call the fake received. */
export interface FakeCall {
  /** "GetSecret", "AccessSecretVersion", "ListProjects"... */
  method: string;
  /** For accesses: the request's no_consume. */
  noConsume: boolean;
  /** For accesses: the revision asked for. */
  revision: string;
}

/** The fields of an access answer. */
export interface AccessInit {
  secretId?: string;
  revision?: number;
  type?: SecretType;
  data?: Uint8Array;
  dataCrc32?: number;
  singleAccess?: boolean;
}
type WatchInit = MessageInitShape<typeof WatchSecretsResponseSchema>;

/** What the fake does. */
export interface FakeOptions {
  /** An error for this call to fail with, or undefined to answer it. */
  fault?: (call: FakeCall, calls: readonly FakeCall[]) => ConnectError | undefined;
  /** The answer to an access; default: an opaque "s3cret", revision 1, not single-access. */
  access?: (call: FakeCall) => AccessInit;
  /** WatchSecrets, as a server-streaming handler. */
  watch?: (req: WatchSecretsRequest, ctx: HandlerContext) => AsyncIterable<WatchInit>;
}

/** A fake with its log of calls. */
export interface Fake {
  /** Every call received, in order. */
  calls: FakeCall[];
  /** The fake as routes, for a router transport or a connect-node server. */
  routes: (router: ConnectRouter) => void;
  /** An in-memory transport to the fake, with these client interceptors. */
  transport(interceptors: Interceptor[]): Transport;
  /** How many calls of `method` arrived (with `noConsume` when given). */
  count(method: string, noConsume?: boolean): number;
}

/** The id of the secret every default answer is about. */
export const SECRET_ID = "3b241101-e2bb-4255-8caf-4136c566a962";

/** An access answer with a correct CRC-32. */
export function answer(data: Uint8Array | string, init: Partial<AccessInit> = {}): AccessInit {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return {
    secretId: SECRET_ID,
    revision: 1,
    type: SecretType.OPAQUE,
    data: bytes,
    dataCrc32: crc32(bytes),
    ...init,
  };
}

/** A fault: UNAVAILABLE for the first `n` calls of each method, then answers. */
export function unavailableFirst(n: number): FakeOptions["fault"] {
  return (call, calls) =>
    calls.filter((c) => c.method === call.method).length <= n
      ? new ConnectError("the server is restarting", Code.Unavailable)
      : undefined;
}

/** A fake doing what `options` say; see {@link FakeOptions}. */
export function createFake(options: FakeOptions = {}): Fake {
  const calls: FakeCall[] = [];
  const handle = (method: string, req: { noConsume?: boolean; revision?: string }): object => {
    const call = { method, noConsume: req.noConsume === true, revision: req.revision ?? "" };
    calls.push(call);
    const fault = options.fault?.(call, calls);
    if (fault !== undefined) throw fault;
    if (method.startsWith("AccessSecretVersion")) {
      return options.access?.(call) ?? answer("s3cret");
    }
    return {};
  };
  const unaryImpl = (service: typeof SecretService | typeof AdminService) => {
    const impl: Record<string, unknown> = {};
    for (const m of service.methods) {
      if (m.methodKind === "unary") {
        impl[m.localName] = (req: { noConsume?: boolean; revision?: string }) =>
          handle(m.name, req);
      }
    }
    return impl;
  };
  const routes = (router: ConnectRouter) => {
    router.service(SecretService, {
      ...unaryImpl(SecretService),
      watchSecrets: (req: WatchSecretsRequest, ctx: HandlerContext) => {
        calls.push({ method: "WatchSecrets", noConsume: false, revision: "" });
        if (options.watch === undefined) {
          throw new ConnectError("no watch in this fake", Code.Unimplemented);
        }
        return options.watch(req, ctx);
      },
    } as ServiceImpl<typeof SecretService>);
    router.service(AdminService, unaryImpl(AdminService) as ServiceImpl<typeof AdminService>);
  };
  return {
    calls,
    routes,
    transport: (interceptors) => createRouterTransport(routes, { transport: { interceptors } }),
    count: (method, noConsume) =>
      calls.filter(
        (c) => c.method === method && (noConsume === undefined || c.noConsume === noConsume),
      ).length,
  };
}
