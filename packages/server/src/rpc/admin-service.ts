import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { AdminService } from "@coffer/api";
import type { ServiceImpl } from "@connectrpc/connect";
import { listAuditEvents } from "../domain/admin/audit.ts";
import {
  createProject,
  deleteProject,
  listProjects,
  updateProject,
} from "../domain/admin/projects.ts";
import { rotateMasterKeyAsAdmin } from "../domain/admin/rotate.ts";
import { createToken, listTokens, revokeToken } from "../domain/admin/tokens.ts";
import type { Domain } from "../domain/context.ts";
import type { RingSource } from "../domain/rotate-keys.ts";
import { callerOf } from "./chain.ts";
import {
  auditEventToProto,
  grantsFromProto,
  projectToProto,
  tokenToProto,
} from "./convert-admin.ts";

/** What AdminService needs beyond the domain. */
export interface AdminServiceDeps {
  /** Called after a revocation commits, so that this replica stops trusting the token at once. */
  forgetToken(tokenId: string): void;
  /** The running key ring, for RotateMasterKey; without it a rotation only rewraps. */
  keys?: RingSource;
}

/**
 * AdminService, implemented once for every transport. Handlers only decode,
 * call one domain function and encode; authorization, validation and audit
 * are the domain's, errors are mapped by the call chain.
 */
export function adminService(
  domain: Domain,
  deps: AdminServiceDeps,
): ServiceImpl<typeof AdminService> {
  return {
    async createProject(req, ctx) {
      return { project: projectToProto(await createProject(domain, callerOf(ctx), req)) };
    },
    async listProjects(req, ctx) {
      const r = await listProjects(domain, callerOf(ctx), req);
      return {
        projects: r.projects.map(projectToProto),
        totalCount: BigInt(r.totalCount),
        nextPageToken: r.nextPageToken,
      };
    },
    async updateProject(req, ctx) {
      return { project: projectToProto(await updateProject(domain, callerOf(ctx), req)) };
    },
    async deleteProject(req, ctx) {
      const r = await deleteProject(domain, callerOf(ctx), req, (id) => deps.forgetToken(id));
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
        ...(req.expiresAt && { expiresAt: timestampDate(req.expiresAt) }),
      });
      return { token: tokenToProto(r.token), value: r.value };
    },
    async listTokens(req, ctx) {
      const r = await listTokens(domain, callerOf(ctx), req);
      return {
        tokens: r.tokens.map(tokenToProto),
        totalCount: BigInt(r.totalCount),
        nextPageToken: r.nextPageToken,
      };
    },
    async revokeToken(req, ctx) {
      const token = await revokeToken(domain, callerOf(ctx), req, (id) => deps.forgetToken(id));
      return { token: tokenToProto(token) };
    },
    async listAuditEvents(req, ctx) {
      const r = await listAuditEvents(domain, callerOf(ctx), {
        region: req.region,
        projectId: req.projectId,
        secretId: req.secretId,
        tokenId: req.tokenId,
        method: req.method,
        outcome: req.outcome,
        ...(req.startTime && { startTime: timestampDate(req.startTime) }),
        ...(req.endTime && { endTime: timestampDate(req.endTime) }),
        page: req.page,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return {
        events: r.events.map(auditEventToProto),
        totalCount: BigInt(r.totalCount),
        nextPageToken: r.nextPageToken,
      };
    },
    async rotateMasterKey(_req, ctx) {
      const r = await rotateMasterKeyAsAdmin(domain, callerOf(ctx), deps.keys);
      return { activeKeyId: r.activeKeyId, rewrapped: BigInt(r.rewrapped) };
    },
  };
}
