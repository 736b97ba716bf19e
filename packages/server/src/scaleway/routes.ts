import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  EphemeralAction,
  ListSecretsOrderBy,
  type SecretService,
  SecretType,
  VersionStatus,
} from "@coffer/api";
import { invalid } from "../domain/errors.ts";
import type { BodyFields, QueryFields } from "./decode.ts";
import * as encode from "./encode.ts";

/**
 * The 22 endpoints of Scaleway Secret Manager v1beta1, each served by one
 * SecretService method through the call chain, as gRPC and Connect are: a
 * route only translates the request into the method's message and its
 * answer into Scaleway's JSON (`../shared/reference/`, the contract). Paths
 * are relative to `/secret-manager/v1beta1/regions/{region}`.
 */

type Methods = (typeof SecretService)["method"];
export type Rpc = keyof Methods;

/** What a route reads a request from. */
export interface RouteInput {
  /** The path's parameters: `region`, and `secret_id` and `revision` where the path has them. */
  params: Readonly<Record<string, string>>;
  query: QueryFields;
  /** The JSON body; `{}` for a route without one. */
  body: BodyFields;
}

export interface Route<K extends Rpc = Rpc> {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path segments; `:name` is a parameter. */
  path: readonly string[];
  /** The SecretService method that serves it. */
  rpc: K;
  /** What the route is about, for errors that do not say (not_found, permissions_denied). */
  resource: "secret" | "secret_version";
  /** Scaleway's names of the method's fields where they differ (`path` is `secret_path`). */
  fields?: Readonly<Record<string, string>>;
  request(input: RouteInput): MessageInitShape<Methods[K]["input"]>;
  /** The JSON answer; undefined is `204 No Content`. */
  answer(response: MessageShape<Methods[K]["output"]>, params: RouteInput["params"]): unknown;
}

function route<K extends Rpc>(r: Route<K>): Route {
  return r as unknown as Route;
}

/** A Scaleway enum name as Coffer's enum value; `unknown_*` (or absent) is unspecified. */
function enumValue<E extends Record<string, string | number>>(
  values: E,
  name: string | undefined,
  field: string,
): E[keyof E] | 0 {
  if (name === undefined || name.startsWith("unknown_")) return 0;
  const value = values[name.toUpperCase()];
  if (typeof value !== "number" || value === 0 || name !== name.toLowerCase()) {
    const names = Object.keys(values)
      .filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED")
      .map((k) => k.toLowerCase());
    throw invalid(field, `must be one of ${names.join(", ")} (got ${JSON.stringify(name)})`);
  }
  return value as E[keyof E];
}

const secretType = (name: string | undefined, field = "type") =>
  enumValue(SecretType, name, field) as SecretType;

function ephemeralPolicy(body: BodyFields) {
  const p = body.object("ephemeral_policy");
  if (p === undefined) return undefined;
  const policy = {
    timeToLive: p.duration("time_to_live"),
    expiresOnceAccessed: p.boolean("expires_once_accessed") ?? false,
    action: enumValue(EphemeralAction, p.string("action"), "ephemeral_policy.action"),
  };
  p.done();
  return policy;
}

function ephemeralProperties(body: BodyFields) {
  const p = body.object("ephemeral_properties");
  if (p === undefined) return undefined;
  const properties = {
    expiresAt: p.timestamp("expires_at"),
    expiresOnceAccessed: p.boolean("expires_once_accessed") ?? false,
    action: enumValue(EphemeralAction, p.string("action"), "ephemeral_properties.action"),
  };
  p.done();
  return properties;
}

/** page (1-based, default 1) and page_size (Coffer's default when absent). */
function paging(query: QueryFields) {
  return { page: query.uint32("page") ?? 1, pageSize: query.uint32("page_size") ?? 0 };
}

/**
 * Coffer has no level above the project, so an organization is a project:
 * `organization_id` names the same project as `project_id`, alone or beside
 * it (two different ones are refused: no project is in both). It is
 * authorized as a project filter is, so it never widens what a token sees.
 */
function projectOf(query: QueryFields): string {
  const project = query.string("project_id") ?? "";
  const organization = query.string("organization_id") ?? "";
  if (organization !== "" && project !== "" && organization !== project) {
    throw invalid(
      "organization_id",
      "must name the same project as project_id: in Coffer an organization is a project",
    );
  }
  return project || organization;
}

const withRegion = ({ params }: RouteInput) => ({ region: params.region ?? "" });
const secretAt = (input: RouteInput) => ({
  ...withRegion(input),
  secretId: input.params.secret_id ?? "",
});
const versionAt = (input: RouteInput) => ({
  ...secretAt(input),
  revision: input.params.revision ?? "",
});

/** A route whose answer is the secret of the method's response. */
const answersSecret = (r: { secret?: Parameters<typeof encode.secret>[0] }) =>
  r.secret === undefined ? {} : encode.secret(r.secret);
const answersVersion = (
  r: { version?: Parameters<typeof encode.version>[0] },
  params: RouteInput["params"],
) => (r.version === undefined ? {} : encode.version(r.version, params.region ?? ""));

/** A body-less action (protect, enable, …) on `at`: Scaleway's clients send `{}`, and only that is accepted. */
function actionOn<T>(at: (input: RouteInput) => T): (input: RouteInput) => T {
  return (input) => {
    input.body.done();
    return at(input);
  };
}

const S = ["secrets", ":secret_id"] as const;
const V = [...S, "versions", ":revision"] as const;

export const ROUTES: readonly Route[] = [
  route({
    method: "POST",
    path: ["secrets"],
    rpc: "createSecret",
    resource: "secret",
    request: (input) => {
      const { body } = input;
      const req = {
        ...withRegion(input),
        projectId: body.string("project_id") ?? "",
        name: body.string("name") ?? "",
        tags: body.strings("tags") ?? [],
        description: body.string("description") ?? "",
        type: secretType(body.string("type")),
        path: body.string("path") ?? "",
        ephemeralPolicy: ephemeralPolicy(body),
        protected: body.boolean("protected") ?? false,
      };
      if (body.string("key_id") !== undefined) {
        throw invalid(
          "key_id",
          "must be null: Coffer encrypts every secret with its own master key ring (COFFER_MASTER_KEYS), not with a customer-managed key",
        );
      }
      body.done();
      return req;
    },
    answer: answersSecret,
  }),
  route({
    method: "GET",
    path: [...S],
    rpc: "getSecret",
    resource: "secret",
    request: secretAt,
    answer: answersSecret,
  }),
  route({
    method: "PATCH",
    path: [...S],
    rpc: "updateSecret",
    resource: "secret",
    request: (input) => {
      const { body } = input;
      const tags = body.strings("tags");
      const req = {
        ...secretAt(input),
        name: body.string("name"),
        path: body.string("path"),
        description: body.string("description"),
        tags: tags === undefined ? undefined : { values: tags },
        ephemeralPolicy: ephemeralPolicy(body),
      };
      body.done();
      return req;
    },
    answer: answersSecret,
  }),
  route({
    method: "DELETE",
    path: [...S],
    rpc: "deleteSecret",
    resource: "secret",
    request: secretAt,
    answer: () => undefined,
  }),
  route({
    method: "GET",
    path: ["secrets"],
    rpc: "listSecrets",
    resource: "secret",
    request: (input) => {
      const { query } = input;
      return {
        ...withRegion(input),
        projectId: projectOf(query),
        name: query.string("name"),
        path: query.string("path"),
        tags: query.all("tags"),
        type: secretType(query.string("type")),
        ephemeral: query.boolean("ephemeral"),
        scheduledForDeletion: query.boolean("scheduled_for_deletion") ?? false,
        orderBy: enumValue(ListSecretsOrderBy, query.string("order_by"), "order_by"),
        ...paging(query),
      };
    },
    answer: (r) => ({ secrets: r.secrets.map(encode.secret), total_count: Number(r.totalCount) }),
  }),
  route({
    method: "GET",
    path: ["secrets", "browse"],
    rpc: "browseSecrets",
    resource: "secret",
    request: (input) => {
      const { query } = input;
      const order = query.string("order_by");
      if (order !== undefined && order !== "name_asc") {
        throw invalid("order_by", "Coffer browses a folder in name order only: name_asc");
      }
      if (query.all("tags").length > 0) {
        throw invalid("tags", "Coffer browses without filters: list secrets by tag instead");
      }
      if (secretType(query.string("type")) !== 0) {
        throw invalid("type", "Coffer browses without filters: list secrets by type instead");
      }
      return {
        ...withRegion(input),
        projectId: query.string("project_id") ?? "",
        prefix: query.string("prefix") ?? "/",
        ...paging(query),
      };
    },
    answer: (r) => ({
      items: r.items.map((item) =>
        item.kind.case === "secret"
          ? {
              name: item.name,
              created_at: encode.time(item.kind.value.createdAt),
              updated_at: encode.time(item.kind.value.updatedAt),
              secret: encode.browsedSecret(item.kind.value),
              folder: null,
            }
          : { name: item.name, created_at: null, updated_at: null, secret: null, folder: {} },
      ),
      current_path: r.currentPath,
      total_count: Number(r.totalCount),
    }),
  }),
  route({
    method: "POST",
    path: [...S, "protect"],
    rpc: "protectSecret",
    resource: "secret",
    request: actionOn(secretAt),
    answer: answersSecret,
  }),
  route({
    method: "POST",
    path: [...S, "unprotect"],
    rpc: "unprotectSecret",
    resource: "secret",
    request: actionOn(secretAt),
    answer: answersSecret,
  }),
  route({
    method: "POST",
    path: [...S, "restore"],
    rpc: "restoreSecret",
    resource: "secret",
    request: actionOn(secretAt),
    answer: answersSecret,
  }),
  route({
    method: "POST",
    path: [...S, "versions"],
    rpc: "createSecretVersion",
    resource: "secret",
    request: (input) => {
      const { body } = input;
      const data = body.base64("data");
      if (data === undefined) throw invalid("data", "is required (base64 of the payload)");
      const req = {
        ...secretAt(input),
        data,
        dataCrc32: body.uint32("data_crc32"),
        description: body.string("description") ?? "",
        disablePrevious: body.boolean("disable_previous") ?? false,
      };
      body.done();
      return req;
    },
    answer: answersVersion,
  }),
  route({
    method: "GET",
    path: [...S, "versions"],
    rpc: "listSecretVersions",
    resource: "secret",
    request: (input) => ({
      ...secretAt(input),
      status: input.query
        .all("status")
        .map((s, i) => enumValue(VersionStatus, s, `status[${i}]`))
        .filter((s) => s !== 0),
      ...paging(input.query),
    }),
    answer: (r, params) => ({
      versions: r.versions.map((v) => encode.version(v, params.region ?? "")),
      total_count: Number(r.totalCount),
    }),
  }),
  route({
    method: "GET",
    path: [...V],
    rpc: "getSecretVersion",
    resource: "secret_version",
    request: versionAt,
    answer: answersVersion,
  }),
  route({
    method: "PATCH",
    path: [...V],
    rpc: "updateSecretVersion",
    resource: "secret_version",
    request: (input) => {
      const { body } = input;
      const req = {
        ...versionAt(input),
        description: body.string("description"),
        ephemeralProperties: ephemeralProperties(body),
      };
      body.done();
      return req;
    },
    answer: answersVersion,
  }),
  route({
    method: "DELETE",
    path: [...V],
    rpc: "deleteSecretVersion",
    resource: "secret_version",
    request: versionAt,
    answer: () => undefined,
  }),
  route({
    method: "GET",
    path: [...V, "access"],
    rpc: "accessSecretVersion",
    resource: "secret_version",
    request: versionAt,
    answer: encode.payload,
  }),
  route({
    method: "GET",
    path: ["secrets-by-path", "versions", ":revision", "access"],
    rpc: "accessSecretVersionByPath",
    resource: "secret",
    fields: { path: "secret_path", name: "secret_name" },
    request: (input) => ({
      ...withRegion(input),
      projectId: input.query.string("project_id") ?? "",
      path: input.query.string("secret_path") ?? "",
      name: input.query.string("secret_name") ?? "",
      revision: input.params.revision ?? "",
    }),
    answer: encode.payload,
  }),
  route({
    method: "POST",
    path: [...V, "enable"],
    rpc: "enableSecretVersion",
    resource: "secret_version",
    request: actionOn(versionAt),
    answer: answersVersion,
  }),
  route({
    method: "POST",
    path: [...V, "disable"],
    rpc: "disableSecretVersion",
    resource: "secret_version",
    request: actionOn(versionAt),
    answer: answersVersion,
  }),
  route({
    method: "POST",
    path: [...V, "restore"],
    rpc: "restoreSecretVersion",
    resource: "secret_version",
    request: actionOn(versionAt),
    answer: answersVersion,
  }),
  route({
    method: "GET",
    path: ["tags"],
    rpc: "listTags",
    resource: "secret",
    request: (input) => ({
      ...withRegion(input),
      projectId: input.query.string("project_id") ?? "",
      ...paging(input.query),
    }),
    answer: (r) => ({ tags: r.tags, total_count: Number(r.totalCount) }),
  }),
  route({
    method: "GET",
    path: ["secret-types"],
    rpc: "listSecretTypes",
    resource: "secret",
    request: (input) => ({
      ...withRegion(input),
      projectId: input.query.string("project_id") ?? "",
      ...paging(input.query),
    }),
    answer: (r) => ({ types: r.types.map(encode.typeName), total_count: Number(r.totalCount) }),
  }),
  // AddSecretOwner: see ADD_OWNER (Coffer has no products to own a secret).
];

/**
 * `POST …/secrets/{secret_id}/add-owner` gives a Scaleway product (Edge
 * Services, Site-to-Site VPN) ownership of a secret. Coffer has no such
 * products: the call is authorized and audited as a read of the secret (so
 * that a missing secret or a token without access is refused as anywhere
 * else), then refused naming `product`, with nothing changed.
 */
export const ADD_OWNER: Route = route({
  method: "POST",
  path: [...S, "add-owner"],
  rpc: "getSecret",
  resource: "secret",
  request: (input) => {
    const product = input.body.string("product");
    input.body.done();
    enumValue(
      { EDGE_SERVICES: 1, S2S_VPN: 2, UNSPECIFIED: 0 } as Record<string, number>,
      product,
      "product",
    );
    return secretAt(input);
  },
  answer: () => {
    throw invalid(
      "product",
      "Coffer has no Scaleway products (edge_services, s2s_vpn) that could own a secret; nothing was changed",
    );
  },
});
