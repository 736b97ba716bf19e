import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { SecretService } from "@coffer/api";
import {
  ConnectError,
  createContextValues,
  createHandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { bearer } from "../domain/authenticate.ts";
import { invalid } from "../domain/errors.ts";
import { saneRequestId } from "../rpc/chain-steps.ts";
import { toConnectError } from "../rpc/errors.ts";
import {
  clientGoneFromNodeRequest,
  clientGoneKey,
  peerFromNodeRequest,
  peerKey,
} from "../rpc/transports/peer.ts";
import { BodyFields, QueryFields } from "./decode.ts";
import { type RestErrorContext, restError } from "./errors.ts";
import { ADD_OWNER, ROUTES, type Route } from "./routes.ts";

/** Where the Scaleway-compatible API lives on the HTTP port. */
export const SCALEWAY_PREFIX = "/secret-manager/v1beta1/regions/";

/**
 * The paths this handler answers: the whole `/secret-manager/` namespace,
 * so that a client with a wrong base path (another version, no region) is
 * told `unknown_resource` in JSON rather than given an empty 404.
 */
export const SCALEWAY_NAMESPACE = "/secret-manager/";

type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type Request = Parameters<NodeHandler>[0];
type Response = Parameters<NodeHandler>[1];

const ALL_ROUTES: readonly Route[] = [...ROUTES, ADD_OWNER];

/** Methods whose request has a JSON body. */
const WITH_BODY = new Set(["POST", "PATCH"]);

export interface ScalewayOptions {
  logger: Logger;
  /** The largest request body read (the port's limit for every protocol). */
  readMaxBytes: number;
}

/**
 * Serves the Scaleway Secret Manager v1beta1 REST API (the contract:
 * `../shared/reference/scaleway-secret-manager-v1beta1.md`) from the same
 * SecretService the other transports serve, already wrapped in the call
 * chain: authentication (`X-Auth-Token`, or `Authorization: Bearer`), rate
 * limits, the audit event, metrics, the log line and the request id are the
 * chain's, under the protocol name `rest`. This layer only reads the
 * request's wire format (decode.ts, refusing what it cannot read before the
 * chain, as connect-node refuses an undecodable message), calls the method,
 * and writes the answer (encode.ts) or the refusal (errors.ts).
 *
 * Every answer is `Content-Type: application/json` exactly: the JS SDK
 * compares the header whole, and hands anything else to its parser as text.
 */
export function scalewayHandler(
  secret: ServiceImpl<typeof SecretService>,
  options: ScalewayOptions,
): (req: Request, res: Response) => void {
  const methods = secret as unknown as Record<
    string,
    (req: unknown, ctx: ReturnType<typeof createHandlerContext>) => Promise<unknown>
  >;
  const serve = async (req: Request, res: Response): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://coffer");
    // The path as sent, not as URL normalizes it: dot segments resolved
    // ("regions/../x", "%2e%2e") would serve a path outside the prefix.
    const pathname = (req.url ?? "/").split("?", 1)[0] ?? "/";
    const token = header(req, "x-auth-token") ?? bearer(header(req, "authorization"));
    const requestId = saneRequestId(header(req, "x-request-id"), token) ?? randomUUID();
    const context: RestErrorContext = {
      resource: "secret",
      resourceId: "",
      hadToken: token !== undefined,
      action: req.method === "GET" ? "read" : "write",
    };
    try {
      const match = matchRoute(req.method ?? "GET", pathname);
      if (match.kind === "none") {
        return reply(res, 404, requestId, {
          type: "unknown_resource",
          message: `no such endpoint: ${req.method} ${pathname}; see the Scaleway Secret Manager v1beta1 API`,
        });
      }
      if (match.kind === "method") {
        res.setHeader("allow", match.allow.join(", "));
        return reply(res, 405, requestId, {
          type: "invalid_request_error",
          message: `${req.method} is not allowed on ${pathname}: ${match.allow.join(" or ")}`,
        });
      }
      const { route, params } = match;
      context.resource = route.resource;
      context.fields = route.fields;
      context.resourceId =
        route.resource === "secret_version"
          ? `${params.secret_id}/${params.revision}`
          : (params.secret_id ?? "");
      const body = WITH_BODY.has(route.method)
        ? BodyFields.parse(await readBody(req, options.readMaxBytes))
        : new BodyFields({});
      const query = new QueryFields(url.searchParams);
      const init = route.request({ params, query, body });
      query.done();
      const desc = SecretService.method[route.rpc];
      const ctx = createHandlerContext({
        service: SecretService,
        method: desc,
        protocolName: "rest",
        requestMethod: req.method ?? "GET",
        url: pathname,
        requestHeader: {
          "x-request-id": requestId,
          ...(token !== undefined && { authorization: `Bearer ${token}` }),
        },
        contextValues: createContextValues()
          .set(peerKey, peerFromNodeRequest(req))
          .set(clientGoneKey, clientGoneFromNodeRequest(req)),
      });
      // The message as any transport would hand it over: every field set or defaulted.
      const answer = await methods[route.rpc]?.(create(desc.input, init as never), ctx);
      const json = route.answer(create(desc.output, answer as never) as never, params);
      if (json === undefined) {
        res.setHeader("x-request-id", requestId);
        res.writeHead(204);
        res.end();
        return;
      }
      return reply(res, 200, requestId, json);
    } catch (e) {
      if (e instanceof RestRefusal) {
        // The rest of the body is not read: the port closes the connection
        // after this answer (connect-node.ts guardRequest), and says so.
        if (e.status === 413 && req.httpVersionMajor === 1) res.setHeader("connection", "close");
        return reply(res, e.status, requestId, e.body);
      }
      const err =
        e instanceof ConnectError
          ? e
          : toConnectError(e, requestId, (cause) =>
              options.logger.error({ request_id: requestId, err: cause }, "internal error"),
            );
      const { status, body } = restError(err, context);
      return reply(res, status, requestId, body);
    }
  };
  // Every refusal is answered inside serve(); what is left is a response
  // that cannot be written (the client went away): it is let go.
  return (req, res) => {
    serve(req, res).catch((err: unknown) => {
      options.logger.warn({ err }, "a REST answer could not be written");
      res.destroy();
    });
  };
}

type Match =
  | { kind: "route"; route: Route; params: Record<string, string> }
  | { kind: "method"; allow: string[] }
  | { kind: "none" };

/**
 * The route of a method and path under SCALEWAY_PREFIX, with the path's
 * parameters. A literal segment beats a parameter (`secrets/browse` is not
 * the secret "browse"): the paths with the fewest parameters that match win.
 */
function matchRoute(method: string, pathname: string): Match {
  if (!pathname.startsWith(SCALEWAY_PREFIX)) return { kind: "none" };
  const [regionPart = "", ...segments] = pathname.slice(SCALEWAY_PREFIX.length).split("/");
  if (regionPart === "") return { kind: "none" };
  const matched = ALL_ROUTES.flatMap((route) => {
    const params = matchPath(route.path, segments);
    return params === undefined ? [] : [{ route, params }];
  });
  if (matched.length === 0) return { kind: "none" };
  const fewest = Math.min(...matched.map((m) => Object.keys(m.params).length));
  const best = matched.filter((m) => Object.keys(m.params).length === fewest);
  const found = best.find((m) => m.route.method === method);
  if (found === undefined) return { kind: "method", allow: best.map((m) => m.route.method) };
  return {
    kind: "route",
    route: found.route,
    params: { ...found.params, region: segment(regionPart, "region") },
  };
}

function matchPath(
  pattern: readonly string[],
  segments: readonly string[],
): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of pattern.entries()) {
    const seg = segments[i] ?? "";
    if (part.startsWith(":")) {
      if (seg === "") return undefined;
      const name = part.slice(1);
      params[name] = segment(seg, name);
    } else if (part !== seg) {
      return undefined;
    }
  }
  return params;
}

/** A path segment, percent-decoded; one that does not decode is refused naming its parameter. */
function segment(raw: string, name: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw invalid(name, "must be a valid percent-encoded path segment");
  }
}

/**
 * The request body as text, refused past `max` bytes (413). Its
 * Content-Type is not checked: Scaleway's clients send JSON with or without
 * a charset, and a hand-written `curl -d` sends a form type. (No cookie
 * authenticates here, so a browser's cross-site form post carries no token.)
 * Read through the port's guarded iterator (connect-node.ts guardRequest): a
 * stalled body times out and counts against the port's buffered-bytes
 * budget, as on every other route.
 */
async function readBody(req: Request, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      throw new RestRefusal(413, {
        type: "invalid_request_error",
        message: `the request body is larger than ${max} bytes; a secret's payload is at most 64 KiB`,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A refusal of the wire itself, with its own status and body. Not a
 * ConnectError: `instanceof` a ConnectError subclass matches every
 * ConnectError (connect overrides Symbol.hasInstance).
 */
class RestRefusal extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

function reply(res: Response, status: number, requestId: string, body: unknown): void {
  const text = Buffer.from(JSON.stringify(body));
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", text.length);
  res.setHeader("x-request-id", requestId);
  res.writeHead(status);
  res.end(text);
}

function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
