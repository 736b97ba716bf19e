import type { AdminService } from "@coffer/api";
import type { ServiceImpl } from "@connectrpc/connect";
import { listAuditEvents } from "../domain/admin/audit.ts";
import {
  createIdentityBinding,
  deleteIdentityBinding,
  listIdentityBindings,
} from "../domain/admin/bindings.ts";
import {
  createTrustedIssuer,
  deleteTrustedIssuer,
  listTrustedIssuers,
  updateTrustedIssuer,
} from "../domain/admin/issuers.ts";
import {
  createProject,
  deleteProject,
  listProjects,
  updateProject,
} from "../domain/admin/projects.ts";
import { rotateMasterKeyAsAdmin } from "../domain/admin/rotate.ts";
import { createToken, getCaller, listTokens, revokeToken } from "../domain/admin/tokens.ts";
import type { DomainDeps } from "../domain/context.ts";
import type { RingSource } from "../domain/rotate-keys.ts";
import { callerOf, passingTo } from "./chain.ts";
import { pageToProto, timestampFromProto } from "./convert.ts";
import {
  auditEventToProto,
  bindingFromProto,
  bindingToProto,
  grantsFromProto,
  issuerFromProto,
  issuerToProto,
  issuerUpdateFromProto,
  projectToProto,
  tokenFormatFromProto,
  tokenToProto,
} from "./convert-admin.ts";

/** What AdminService needs beyond the domain. */
export interface AdminServiceDeps {
  /**
   * Called once after a revocation commits, with every token it revoked (the
   * named one and those it created, transitively): the tokens stop working at
   * once and their watch streams end, here and on the other replicas (see
   * TokenStreams.revoked).
   */
  tokensRevoked(tokenIds: readonly string[]): void;
  /** Called after tokens' grants changed (a project was deleted): forget them. */
  tokensChanged?(tokenIds: readonly string[]): void;
  /** Called after a token is created, so that this replica stops refusing its value at once. */
  tokenCreated?(value: string): void;
  /** Called after an issuer's update commits: this replica drops the keys it cached for it. */
  issuerChanged?(issuerId: string): void;
  /** The running key ring, for RotateMasterKey; without it a rotation only rewraps. */
  keys?: RingSource;
}

/**
 * AdminService, implemented once for every transport. Handlers only decode,
 * call one domain function and encode; authorization, validation and audit
 * are the domain's, errors are mapped by the call chain.
 */
export function adminService(
  domain: DomainDeps,
  deps: AdminServiceDeps,
): ServiceImpl<typeof AdminService> {
  const project = (p: Parameters<typeof projectToProto>[0]) => ({ project: projectToProto(p) });
  const call = passingTo(domain);
  return {
    createProject: call(createProject, project),
    getCaller: call(getCaller, (r) => ({
      token: tokenToProto(r.token),
      projects: r.projects.map(projectToProto),
    })),
    listProjects: call(listProjects, (r) => ({
      projects: r.projects.map(projectToProto),
      ...pageToProto(r),
    })),
    updateProject: call(updateProject, project),
    async deleteProject(req, ctx) {
      const r = await deleteProject(domain, callerOf(ctx), req, {
        revoked: (ids) => deps.tokensRevoked(ids),
        changed: (ids) => deps.tokensChanged?.(ids),
      });
      return {
        project: projectToProto(r.project),
        destroyedSecrets: BigInt(r.destroyedSecrets),
        updatedTokens: BigInt(r.updatedTokens),
      };
    },
    async createToken(req, ctx) {
      const r = await createToken(domain, callerOf(ctx), {
        name: req.name,
        grants: grantsFromProto(req.grants),
        ...(req.expiresAt && { expiresAt: timestampFromProto(req.expiresAt, "expires_at") }),
        format: tokenFormatFromProto(req.format, "format"),
      });
      deps.tokenCreated?.(r.value);
      return { token: tokenToProto(r.token), value: r.value, accessKey: r.accessKey ?? "" };
    },
    listTokens: call(listTokens, (r) => ({
      tokens: r.tokens.map(tokenToProto),
      ...pageToProto(r),
    })),
    async revokeToken(req, ctx) {
      const token = await revokeToken(domain, callerOf(ctx), req, (ids) => deps.tokensRevoked(ids));
      return { token: tokenToProto(token) };
    },
    async listAuditEvents(req, ctx) {
      const r = await listAuditEvents(domain, callerOf(ctx), {
        ...req,
        startTime: req.startTime && timestampFromProto(req.startTime, "start_time"),
        endTime: req.endTime && timestampFromProto(req.endTime, "end_time"),
      });
      return { events: r.events.map(auditEventToProto), ...pageToProto(r) };
    },
    async rotateMasterKey(_req, ctx) {
      const r = await rotateMasterKeyAsAdmin(domain, callerOf(ctx), deps.keys);
      return { activeKeyId: r.activeKeyId, rewrapped: BigInt(r.rewrapped) };
    },
    async createTrustedIssuer(req, ctx) {
      const issuer = await createTrustedIssuer(domain, callerOf(ctx), issuerFromProto(req.issuer));
      return { issuer: issuerToProto(issuer) };
    },
    listTrustedIssuers: call(listTrustedIssuers, (r) => ({
      issuers: r.issuers.map(issuerToProto),
      ...pageToProto(r),
    })),
    async updateTrustedIssuer(req, ctx) {
      const issuer = await updateTrustedIssuer(
        domain,
        callerOf(ctx),
        issuerUpdateFromProto(req),
        (id) => deps.issuerChanged?.(id),
      );
      return { issuer: issuerToProto(issuer) };
    },
    async deleteTrustedIssuer(req, ctx) {
      const r = await deleteTrustedIssuer(domain, callerOf(ctx), req, (ids) =>
        deps.tokensRevoked(ids),
      );
      return {
        issuer: issuerToProto(r.issuer),
        deletedBindings: BigInt(r.deletedBindings),
        revokedTokens: BigInt(r.revokedTokens),
      };
    },
    async createIdentityBinding(req, ctx) {
      const binding = await createIdentityBinding(
        domain,
        callerOf(ctx),
        bindingFromProto(req.binding),
      );
      return { binding: bindingToProto(binding) };
    },
    listIdentityBindings: call(listIdentityBindings, (r) => ({
      bindings: r.bindings.map(bindingToProto),
      ...pageToProto(r),
    })),
    async deleteIdentityBinding(req, ctx) {
      const r = await deleteIdentityBinding(domain, callerOf(ctx), req, (ids) =>
        deps.tokensRevoked(ids),
      );
      return { binding: bindingToProto(r.binding), revokedTokens: BigInt(r.revokedTokens) };
    },
  };
}
