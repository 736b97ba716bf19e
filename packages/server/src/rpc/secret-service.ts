import type { SecretService } from "@coffer/api";
import type { ServiceImpl } from "@connectrpc/connect";
import { type AccessResult, accessVersion, accessVersionByPath } from "../domain/access-version.ts";
import type { DomainDeps } from "../domain/context.ts";
import { createSecret } from "../domain/create-secret.ts";
import { createVersion } from "../domain/create-version.ts";
import { deleteSecret, restoreSecret } from "../domain/delete-secret.ts";
import { listRegions } from "../domain/list-regions.ts";
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
import { callerOf, passingTo } from "./chain.ts";
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
  domain: DomainDeps,
  feeds: WatchFeeds,
): ServiceImpl<typeof SecretService> {
  const secret = (s: Parameters<typeof secretToProto>[0]) => ({ secret: secretToProto(s) });
  const version = (v: Parameters<typeof versionToProto>[0]) => ({ version: versionToProto(v) });
  const payload = (r: AccessResult) => ({ ...r, type: typeFromKind(r.type) });
  const call = passingTo(domain);

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
    getSecret: call(getSecret, secret),
    async updateSecret(req, ctx) {
      return secret(
        await updateSecret(domain, callerOf(ctx), {
          ...req,
          tags: req.tags?.values,
          ephemeralPolicy: policyFromProto(req.ephemeralPolicy),
        }),
      );
    },
    deleteSecret: call(deleteSecret, (s) => (s === undefined ? {} : secret(s))),
    restoreSecret: call(restoreSecret, secret),
    async listSecrets(req, ctx) {
      const r = await listSecrets(domain, callerOf(ctx), {
        ...req,
        type: kindFromType(req.type, "type"),
        orderBy: orderFromProto(req.orderBy),
      });
      return { secrets: r.secrets.map(secretToProto), ...pageToProto(r) };
    },
    browseSecrets: call(browseSecrets, (r) => ({
      currentPath: r.currentPath,
      ...pageToProto(r),
      items: r.items.map((item) => ({
        name: item.name,
        fullPath: item.fullPath,
        kind:
          item.kind === "folder"
            ? { case: "folder" as const, value: { secretCount: BigInt(item.secretCount) } }
            : { case: "secret" as const, value: secretToProto(item.secret) },
      })),
    })),
    async protectSecret(req, ctx) {
      return secret(await setProtection(domain, callerOf(ctx), { ...req, protected: true }));
    },
    async unprotectSecret(req, ctx) {
      return secret(await setProtection(domain, callerOf(ctx), { ...req, protected: false }));
    },
    listTags: call(listTags, (r) => ({ tags: r.tags, ...pageToProto(r) })),
    listSecretTypes: call(listSecretTypes, (r) => ({
      types: r.types.map(typeFromKind),
      ...pageToProto(r),
    })),
    listRegions: call(listRegions, (r) => r),

    async createSecretVersion(req, ctx) {
      return version(
        await createVersion(domain, callerOf(ctx), { ...req, enabled: req.enabled ?? true }),
      );
    },
    getSecretVersion: call(getVersion, version),
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
    accessSecretVersion: call(accessVersion, payload),
    accessSecretVersionByPath: call(accessVersionByPath, payload),
    watchSecrets(req, ctx) {
      const input = watchInputFromProto(req);
      return watchSecrets(domain, feeds, callerOf(ctx), input, ctx.signal, watchMessageToProto);
    },
    enableSecretVersion: call(enableVersion, version),
    disableSecretVersion: call(disableVersion, version),
    deleteSecretVersion: call(deleteVersion, version),
    restoreSecretVersion: call(restoreVersion, version),
    destroySecretVersion: call(destroyVersion, version),
  };
}
