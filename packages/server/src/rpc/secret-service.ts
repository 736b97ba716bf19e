import type { SecretService } from "@coffer/api";
import type { ServiceImpl } from "@connectrpc/connect";
import { accessVersion, accessVersionByPath } from "../domain/access-version.ts";
import type { Domain } from "../domain/context.ts";
import { createSecret } from "../domain/create-secret.ts";
import { createVersion } from "../domain/create-version.ts";
import { deleteSecret, restoreSecret } from "../domain/delete-secret.ts";
import {
  browseSecrets,
  getSecret,
  listSecrets,
  listSecretTypes,
  listTags,
} from "../domain/read-secrets.ts";
import { getVersion, listVersions } from "../domain/read-versions.ts";
import { setProtection, updateSecret } from "../domain/update-secret.ts";
import { updateVersion } from "../domain/update-version.ts";
import {
  deleteVersion,
  destroyVersion,
  disableVersion,
  enableVersion,
  restoreVersion,
} from "../domain/version-state.ts";
import type { WatchFeeds } from "../watch/feed.ts";
import { watchSecrets } from "../watch/watch-secrets.ts";
import { callerOf } from "./chain.ts";
import {
  kindFromType,
  orderFromProto,
  pageToProto,
  policyFromProto,
  propertiesFromProto,
  secretToProto,
  typeFromKind,
  versionStatusFromProto,
  versionToProto,
} from "./convert.ts";
import { watchInputFromProto, watchMessageToProto } from "./convert-watch.ts";

/**
 * SecretService, implemented once for every transport. Handlers only decode,
 * call one domain function and encode; errors are mapped by the call chain.
 */
export function secretService(
  domain: Domain,
  feeds: WatchFeeds,
): ServiceImpl<typeof SecretService> {
  const secret = (s: Parameters<typeof secretToProto>[0]) => ({ secret: secretToProto(s) });
  const version = (v: Parameters<typeof versionToProto>[0]) => ({ version: versionToProto(v) });

  return {
    async createSecret(req, ctx) {
      const r = await createSecret(domain, callerOf(ctx), {
        ...req,
        type: kindFromType(req.type, "type") ?? "opaque",
        ephemeralPolicy: policyFromProto(req.ephemeralPolicy),
      });
      return {
        secret: secretToProto(r.secret),
        ...(r.firstVersion && { firstVersion: versionToProto(r.firstVersion) }),
      };
    },
    async getSecret(req, ctx) {
      return secret(await getSecret(domain, callerOf(ctx), req));
    },
    async updateSecret(req, ctx) {
      return secret(
        await updateSecret(domain, callerOf(ctx), {
          ...req,
          tags: req.tags?.values,
          ephemeralPolicy: policyFromProto(req.ephemeralPolicy),
        }),
      );
    },
    async deleteSecret(req, ctx) {
      const s = await deleteSecret(domain, callerOf(ctx), req);
      return s === undefined ? {} : secret(s);
    },
    async restoreSecret(req, ctx) {
      return secret(await restoreSecret(domain, callerOf(ctx), req));
    },
    async listSecrets(req, ctx) {
      const r = await listSecrets(domain, callerOf(ctx), {
        ...req,
        type: kindFromType(req.type, "type"),
        orderBy: orderFromProto(req.orderBy),
      });
      return { secrets: r.secrets.map(secretToProto), ...pageToProto(r) };
    },
    async browseSecrets(req, ctx) {
      const r = await browseSecrets(domain, callerOf(ctx), req);
      return {
        currentPath: r.currentPath,
        ...pageToProto(r),
        items: r.items.map((item) => ({
          name: item.name,
          fullPath: item.fullPath,
          kind:
            item.kind === "folder"
              ? { case: "folder", value: { secretCount: BigInt(item.secretCount) } }
              : { case: "secret", value: secretToProto(item.secret) },
        })),
      };
    },
    async protectSecret(req, ctx) {
      return secret(await setProtection(domain, callerOf(ctx), { ...req, protected: true }));
    },
    async unprotectSecret(req, ctx) {
      return secret(await setProtection(domain, callerOf(ctx), { ...req, protected: false }));
    },
    async listTags(req, ctx) {
      const r = await listTags(domain, callerOf(ctx), req);
      return { tags: r.tags, ...pageToProto(r) };
    },
    async listSecretTypes(req, ctx) {
      const r = await listSecretTypes(domain, callerOf(ctx), req);
      return { types: r.types.map(typeFromKind), ...pageToProto(r) };
    },

    async createSecretVersion(req, ctx) {
      return version(
        await createVersion(domain, callerOf(ctx), { ...req, enabled: req.enabled ?? true }),
      );
    },
    async getSecretVersion(req, ctx) {
      return version(await getVersion(domain, callerOf(ctx), req));
    },
    async updateSecretVersion(req, ctx) {
      return version(
        await updateVersion(domain, callerOf(ctx), {
          ...req,
          ephemeralProperties: propertiesFromProto(req.ephemeralProperties),
        }),
      );
    },
    async listSecretVersions(req, ctx) {
      const r = await listVersions(domain, callerOf(ctx), {
        ...req,
        statuses: req.status.map((s, i) => versionStatusFromProto(s, `status[${i}]`)),
      });
      return { versions: r.versions.map(versionToProto), ...pageToProto(r) };
    },
    async accessSecretVersion(req, ctx) {
      const r = await accessVersion(domain, callerOf(ctx), req);
      return { ...r, type: typeFromKind(r.type) };
    },
    async accessSecretVersionByPath(req, ctx) {
      const r = await accessVersionByPath(domain, callerOf(ctx), req);
      return { ...r, type: typeFromKind(r.type) };
    },
    watchSecrets(req, ctx) {
      const input = watchInputFromProto(req);
      return watchSecrets(domain, feeds, callerOf(ctx), input, ctx.signal, watchMessageToProto);
    },
    async enableSecretVersion(req, ctx) {
      return version(await enableVersion(domain, callerOf(ctx), req));
    },
    async disableSecretVersion(req, ctx) {
      return version(await disableVersion(domain, callerOf(ctx), req));
    },
    async deleteSecretVersion(req, ctx) {
      return version(await deleteVersion(domain, callerOf(ctx), req));
    },
    async restoreSecretVersion(req, ctx) {
      return version(await restoreVersion(domain, callerOf(ctx), req));
    },
    async destroySecretVersion(req, ctx) {
      return version(await destroyVersion(domain, callerOf(ctx), req));
    },
  };
}
