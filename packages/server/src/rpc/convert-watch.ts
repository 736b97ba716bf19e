import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  VersionStatus,
  WatchEventKind,
  type WatchSecretsRequest,
  type WatchSecretsResponseSchema,
} from "@coffer/api";
import { invalid } from "../domain/errors.ts";
import type { WatchInput, WatchMessage, WatchSelector } from "../watch/watch-secrets.ts";
import { enumNames, versionStatusToProto } from "./convert.ts";

const KINDS = enumNames("watch event kind", WatchEventKind);

export function watchInputFromProto(req: WatchSecretsRequest): WatchInput {
  const selectors = req.selectors.map((s, i): WatchSelector => {
    switch (s.selector.case) {
      case "secretId":
        return { kind: "secretId", secretId: s.selector.value };
      case "location":
        return { kind: "location", path: s.selector.value.path, name: s.selector.value.name };
      case "pathPrefix":
        return { kind: "pathPrefix", pathPrefix: s.selector.value };
      default:
        throw invalid(`selectors[${i}]`, "must set secret_id, location or path_prefix");
    }
  });
  const hb = req.heartbeatInterval;
  if (hb !== undefined && (hb.seconds < 0n || hb.nanos < 0)) {
    throw invalid("heartbeat_interval", "must be between 1 second and 5 minutes");
  }
  return {
    region: req.region,
    projectId: req.projectId,
    selectors,
    sinceCursor: req.sinceCursor,
    heartbeatMs: hb === undefined ? undefined : durationMs(hb),
  };
}

export function watchMessageToProto(
  m: WatchMessage,
): MessageInitShape<typeof WatchSecretsResponseSchema> {
  const base = {
    kind: KINDS.toProto(m.kind),
    cursor: m.cursor,
    occurredAt: timestampFromDate(m.occurredAt),
  };
  if (!("secretId" in m)) return base;
  return {
    ...base,
    secretId: m.secretId,
    projectId: m.projectId,
    path: m.path,
    name: m.name,
    ...(m.previousPath !== null &&
      m.previousName !== null && {
        previousLocation: { path: m.previousPath, name: m.previousName },
      }),
    revision: m.revision,
    versionStatus:
      m.versionStatus === null ? VersionStatus.UNSPECIFIED : versionStatusToProto(m.versionStatus),
    singleAccess: m.singleAccess,
  };
}
