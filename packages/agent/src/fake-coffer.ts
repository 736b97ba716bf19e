import { randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import {
  type AccessSecretVersionResponse,
  AccessSecretVersionResponseSchema,
  SecretType,
  VersionStatus,
  WatchEventKind,
  type WatchSecretsResponse,
  WatchSecretsResponseSchema,
} from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAgentLogger, type Logger } from "./logger.ts";
import type { AgentClient } from "./reconcile.ts";

/**
 * An in-memory Coffer for the agent's unit tests: the three calls the agent
 * makes, with the server's rules for latest_enabled, single access and
 * no_consume, an event log with cursors, and ways to make calls fail.
 * Not part of the package's API.
 */

interface FakeVersion {
  revision: number;
  data: Buffer;
  enabled: boolean;
  singleAccess: boolean;
  consumed: boolean;
}

interface FakeSecret {
  id: string;
  path: string;
  name: string;
  deleted: boolean;
  singleAccess: boolean;
  versions: FakeVersion[];
}

/** One access the fake answered or refused. */
export interface AccessRecord {
  secretId: string;
  revision: string;
  noConsume: boolean;
  outcome: "served" | "checked" | Code;
}

type AccessRequest = {
  region?: string;
  secretId?: string;
  projectId?: string;
  path?: string;
  name?: string;
  revision?: string;
  noConsume?: boolean;
};

/** Decides, per access, whether to fail it: an error to throw, "after" to serve then throw (a lost answer), or undefined. */
export type AccessFault = (req: AccessRecord) => ConnectError | { after: ConnectError } | undefined;

export class FakeCoffer {
  readonly projectId = randomUUID();
  readonly accesses: AccessRecord[] = [];
  readonly #secrets = new Map<string, FakeSecret>();
  readonly #events: WatchSecretsResponse[] = [];
  readonly #listeners = new Set<() => void>();
  #streams = new Set<{ fail: (err: Error) => void; token: string | undefined }>();
  readonly #expired = new Set<string>();
  /** The token each watch call of {@link clientWith}'s client came with, in order. */
  watchTokens: string[] = [];
  /** Events at or below this cursor are gone: resuming from one gets RESYNC. */
  retainedAfter = 0;
  /** Makes accesses fail. */
  fault: AccessFault | undefined;
  /** Makes watch calls fail at once. */
  watchDown: ConnectError | undefined;
  watchCalls: string[] = [];

  get head(): number {
    return this.#events.length;
  }

  createSecret(
    path: string,
    name: string,
    options: { singleAccess?: boolean; data?: string | Buffer } = {},
  ): string {
    const secret: FakeSecret = {
      id: randomUUID(),
      path,
      name,
      deleted: false,
      singleAccess: options.singleAccess ?? false,
      versions: [],
    };
    this.#secrets.set(secret.id, secret);
    this.#emit(WatchEventKind.SECRET_CREATED, secret, 0);
    if (options.data !== undefined) this.addVersion(secret.id, options.data);
    return secret.id;
  }

  addVersion(secretId: string, data: string | Buffer, options: { enabled?: boolean } = {}): number {
    const secret = this.#get(secretId);
    const version: FakeVersion = {
      revision: secret.versions.length + 1,
      data: Buffer.from(data),
      enabled: options.enabled ?? true,
      singleAccess: secret.singleAccess,
      consumed: false,
    };
    secret.versions.push(version);
    this.#emit(WatchEventKind.VERSION_CREATED, secret, version.revision);
    return version.revision;
  }

  setEnabled(secretId: string, revision: number, enabled: boolean): void {
    const secret = this.#get(secretId);
    const version = secret.versions[revision - 1];
    if (version === undefined) throw new Error("no such version");
    version.enabled = enabled;
    this.#emit(
      enabled ? WatchEventKind.VERSION_ENABLED : WatchEventKind.VERSION_DISABLED,
      secret,
      revision,
    );
  }

  deleteSecret(secretId: string): void {
    const secret = this.#get(secretId);
    secret.deleted = true;
    this.#emit(WatchEventKind.SECRET_DELETED, secret, 0);
  }

  move(secretId: string, path: string, name: string): void {
    const secret = this.#get(secretId);
    const previous = { path: secret.path, name: secret.name };
    secret.path = path;
    secret.name = name;
    this.#emit(WatchEventKind.SECRET_UPDATED, secret, 0, previous);
  }

  /** Consumes a single-access version as another reader would. */
  consumeElsewhere(secretId: string, revision: number): void {
    const secret = this.#get(secretId);
    const version = secret.versions[revision - 1];
    if (version === undefined) throw new Error("no such version");
    version.consumed = true;
    version.enabled = false;
    this.#emit(WatchEventKind.VERSION_CONSUMED, secret, revision);
  }

  /** How many times a version was served with its payload. */
  served(secretId: string, revision: number): number {
    return this.accesses.filter(
      (a) => a.secretId === secretId && a.revision === String(revision) && a.outcome === "served",
    ).length;
  }

  /** Consuming accesses (not no_consume) of a secret, whatever their outcome. */
  consumingAccesses(secretId: string): AccessRecord[] {
    return this.accesses.filter((a) => a.secretId === secretId && !a.noConsume);
  }

  /** Ends every open stream with an error (the server went away). */
  dropStreams(err = new ConnectError("server went away", Code.Unavailable)): void {
    for (const s of this.#streams) s.fail(err);
  }

  /** Sends a RESYNC on every open stream. */
  resync(): void {
    const event = create(WatchSecretsResponseSchema, {
      kind: WatchEventKind.RESYNC,
      cursor: String(this.head),
    });
    this.#events.push(event);
    for (const l of this.#listeners) l();
  }

  get client(): AgentClient {
    return {
      accessSecretVersion: (req: AccessRequest) => this.#access(req, undefined),
      accessSecretVersionByPath: (req: AccessRequest) =>
        this.#access(req, { path: req.path ?? "/", name: req.name ?? "" }),
      watchSecrets: (req: { sinceCursor?: string }, options?: { signal?: AbortSignal }) =>
        this.#watch(req.sinceCursor ?? "", options?.signal),
    } as unknown as AgentClient;
  }

  /**
   * A client whose calls carry the token `token()` gives when each is made,
   * as a client with a token provider: a call with an expired token (see
   * {@link expireToken}) is UNAUTHENTICATED.
   */
  clientWith(token: () => string | Promise<string>): AgentClient {
    const checked = async () => {
      const t = await token();
      if (this.#expired.has(t)) throw new ConnectError("token expired", Code.Unauthenticated);
      return t;
    };
    return {
      accessSecretVersion: async (req: AccessRequest) => {
        await checked();
        return this.#access(req, undefined);
      },
      accessSecretVersionByPath: async (req: AccessRequest) => {
        await checked();
        return this.#access(req, { path: req.path ?? "/", name: req.name ?? "" });
      },
      watchSecrets: (req: { sinceCursor?: string }, options?: { signal?: AbortSignal }) =>
        this.#watch(req.sinceCursor ?? "", options?.signal, checked),
    } as unknown as AgentClient;
  }

  /** As the server when a token expires: its streams end with UNAUTHENTICATED, its calls are refused. */
  expireToken(token: string): void {
    this.#expired.add(token);
    const err = new ConnectError("token expired", Code.Unauthenticated);
    for (const s of this.#streams) if (s.token === token) s.fail(err);
  }

  #get(id: string): FakeSecret {
    const secret = this.#secrets.get(id);
    if (secret === undefined) throw new Error("no such secret");
    return secret;
  }

  #emit(
    kind: WatchEventKind,
    secret: FakeSecret,
    revision: number,
    previous?: { path: string; name: string },
  ): void {
    const version = secret.versions[revision - 1];
    this.#events.push(
      create(WatchSecretsResponseSchema, {
        kind,
        cursor: String(this.#events.length + 1),
        secretId: secret.id,
        projectId: this.projectId,
        path: secret.path,
        name: secret.name,
        revision,
        singleAccess: version?.singleAccess ?? false,
        versionStatus:
          version === undefined
            ? VersionStatus.UNSPECIFIED
            : version.enabled
              ? VersionStatus.ENABLED
              : VersionStatus.DISABLED,
        ...(previous !== undefined && { previousLocation: previous }),
      }),
    );
    for (const l of this.#listeners) l();
  }

  async #access(
    req: AccessRequest,
    location: { path: string; name: string } | undefined,
  ): Promise<AccessSecretVersionResponse> {
    await Promise.resolve();
    let secret: FakeSecret | undefined;
    if (location === undefined) {
      secret = this.#secrets.get(req.secretId ?? "");
    } else {
      secret = [...this.#secrets.values()].find(
        (s) => !s.deleted && s.path === location.path && s.name === location.name,
      );
    }
    const record: AccessRecord = {
      secretId: secret?.id ?? req.secretId ?? "",
      revision: req.revision ?? "",
      noConsume: req.noConsume ?? false,
      outcome: Code.NotFound,
    };
    this.accesses.push(record);
    const fault = this.fault?.(record);
    if (fault instanceof ConnectError) {
      record.outcome = fault.code;
      throw fault;
    }
    if (secret === undefined || secret.deleted) {
      throw new ConnectError("secret not found", Code.NotFound);
    }
    const servable = (v: FakeVersion) => v.enabled && !v.consumed;
    let version: FakeVersion | undefined;
    if (req.revision === "latest_enabled") {
      version = [...secret.versions].reverse().find(servable);
      if (version === undefined) {
        record.outcome = Code.FailedPrecondition;
        throw new ConnectError("no enabled version", Code.FailedPrecondition);
      }
    } else {
      version = secret.versions[Number(req.revision) - 1];
      if (version === undefined) throw new ConnectError("version not found", Code.NotFound);
      if (!servable(version)) {
        record.outcome = Code.FailedPrecondition;
        throw new ConnectError("version is disabled or consumed", Code.FailedPrecondition);
      }
    }
    if (version.singleAccess && req.noConsume) {
      record.outcome = "checked";
      return create(AccessSecretVersionResponseSchema, {
        secretId: secret.id,
        revision: version.revision,
        singleAccess: true,
        type: SecretType.OPAQUE,
      });
    }
    if (version.singleAccess) {
      version.consumed = true;
      version.enabled = false;
      this.#emit(WatchEventKind.VERSION_CONSUMED, secret, version.revision);
    }
    record.outcome = "served";
    record.revision = String(version.revision);
    const response = create(AccessSecretVersionResponseSchema, {
      secretId: secret.id,
      revision: version.revision,
      data: Buffer.from(version.data),
      dataCrc32: crc32(version.data),
      singleAccess: version.singleAccess,
      type: SecretType.OPAQUE,
    });
    if (fault !== undefined) throw fault.after;
    return response;
  }

  async *#watch(
    since: string,
    signal: AbortSignal | undefined,
    token?: () => Promise<string>,
  ): AsyncGenerator<WatchSecretsResponse> {
    this.watchCalls.push(since);
    const used = await token?.();
    if (used !== undefined) this.watchTokens.push(used);
    if (this.watchDown !== undefined) throw this.watchDown;
    let failure: Error | undefined;
    let wake: () => void = () => {};
    const stream = {
      token: used,
      fail: (err: Error) => {
        failure = err;
        wake();
      },
    };
    const onEvent = () => wake();
    this.#streams.add(stream);
    this.#listeners.add(onEvent);
    const onAbort = () => {
      failure = new ConnectError("canceled", Code.Canceled);
      wake();
    };
    signal?.addEventListener("abort", onAbort);
    try {
      // Like the server: the first message is a heartbeat at the starting
      // cursor, or a RESYNC at the head when since is no longer retained.
      let position = since === "" ? this.head : Number(since);
      const stale = since !== "" && position < this.retainedAfter;
      if (stale) position = this.head;
      yield create(WatchSecretsResponseSchema, {
        kind: stale ? WatchEventKind.RESYNC : WatchEventKind.HEARTBEAT,
        cursor: String(position),
      });
      for (;;) {
        if (failure !== undefined) throw failure;
        const next = this.#events[position];
        if (next !== undefined) {
          position += 1;
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      this.#streams.delete(stream);
      this.#listeners.delete(onEvent);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** A JSON logger whose lines are kept in memory, parsed. */
export function memoryLogger(): {
  logger: Logger;
  lines: Record<string, unknown>[];
  text: () => string;
} {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const logger = createAgentLogger("debug", {
    write(line: string) {
      raw.push(line);
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines, text: () => raw.join("") };
}
