import {
  Backoff,
  type BackoffOptions,
  createCofferClient,
  jwtTokenProvider,
  WatchEventKind,
  type WatchSecretsResponse,
} from "@coffer/client";
import { removeStaleTemporaries } from "./atomic-file.ts";
import type { AgentConfig } from "./config.ts";
import { Debouncer } from "./debounce.ts";
import { type HealthServer, startHealthServer } from "./health.ts";
import { createAgentLogger, type Logger } from "./logger.ts";
import { onChangeAction } from "./on-change.ts";
import {
  type AgentClient,
  buildUnits,
  type Outcome,
  Reconciler,
  refKey,
  type Unit,
} from "./reconcile.ts";
import { UnitRunner } from "./runner.ts";
import { StateStore } from "./state.ts";
import { keepRenewing, type RenewingToken, renewalsOf } from "./token-renewal.ts";
import { runWatch, type WatchSelectorInit } from "./watch.ts";

/** A cursor that moved with no work of the agent's own is saved at most this late. */
const CURSOR_SAVE_MS = 10_000;

/** Options of {@link startAgent} and {@link runOnce}. */
export interface AgentOptions {
  /** The client to use instead of one built from `config.server` (tests, benchmarks). */
  client?: AgentClient;
  /** The logger to use instead of JSON lines on stdout at `config.logLevel`. */
  logger?: Logger;
  /** Backoff of reconnects and retries (default 100 ms doubling to 30 s). */
  backoff?: BackoffOptions;
  /**
   * The renewing token that `client` signs in with (tests give both);
   * otherwise built from `config.server.auth` when set.
   */
  token?: RenewingToken;
}

/** What a file's last reconcile found. */
export type FileState = "pending" | "current" | "absent" | "kept" | "failed";

/** One configured file, as the health endpoints show it. */
export interface FileStatus {
  destination: string;
  /** `/path/name` or `id:<uuid>`. */
  secret: string;
  secretId: string | null;
  /** The revision the file holds, or null when there is no file. */
  revision: number | null;
  singleAccess: boolean;
  state: FileState;
  /** Why the last reconcile failed (a rule, never a payload). */
  error?: string;
}

/** The agent's status, as `/healthz` and `/readyz` show it. */
export interface AgentStatus {
  /** Every file was rendered, or its secret found absent, at least once. */
  ready: boolean;
  /** The watch stream is up. */
  connected: boolean;
  /** The cursor saved in the state file. */
  cursor: string;
  secrets: FileStatus[];
}

/** A running agent. */
export interface AgentHandle {
  /**
   * Resolves once every file was rendered or its secret found absent at
   * least once; rejects when the agent stops before that.
   */
  readonly ready: Promise<void>;
  /** `host:port` of the health endpoints, when `health_listen` is set. */
  readonly healthAddress: string | undefined;
  status(): AgentStatus;
  /**
   * Stops watching, lets reconciles in flight finish (a consuming access is
   * never cut off), saves the state, runs pending on_change actions.
   */
  stop(): Promise<void>;
}

/** What {@link runOnce} found. */
export interface OnceResult {
  /** Every file was written or was already current. */
  ok: boolean;
  secrets: FileStatus[];
}

interface UnitTrack {
  runner: UnitRunner;
  outcome: Outcome | undefined;
}

/** The parts shared by {@link startAgent} and {@link runOnce}. */
async function prepare(
  config: AgentConfig,
  options: AgentOptions,
  signal: AbortSignal,
  maxAttempts: number | undefined,
) {
  const logger = options.logger ?? createAgentLogger(config.logLevel);
  const state = await StateStore.load(config.stateFile);
  const units = buildUnits(config.secrets);
  for (const unit of units) {
    for (const file of unit.files) {
      unit.secretId ??= state.fileRecord(file.destination)?.secretId;
      await removeStaleTemporaries(file.destination);
    }
    unit.secretId ??= state.singleAccess(unit.key)?.secretId;
  }
  const { client, token } = connect(config, options);
  const backoff = () => new Backoff(options.backoff);

  const debouncers: Debouncer[] = [];
  const agentAction =
    config.onChange === undefined
      ? undefined
      : new Debouncer(onChangeAction(config.onChange, logger, "agent", config.server), {
          waitMs: config.onChange.debounceMs,
        });
  if (agentAction !== undefined) debouncers.push(agentAction);
  const fileActions = new Map<string, Debouncer>();
  for (const file of config.secrets) {
    if (file.onChange === undefined) continue;
    const d = new Debouncer(
      onChangeAction(file.onChange, logger, file.destination, config.server),
      {
        waitMs: file.onChange.debounceMs,
      },
    );
    fileActions.set(file.destination, d);
    debouncers.push(d);
  }

  const reconciler = new Reconciler({
    client,
    state,
    logger,
    projectId: config.projectId,
    region: config.region,
    callTimeoutMs: config.server.callTimeoutMs,
    signal,
    backoff,
    onChanged: (_unit, destinations) => {
      agentAction?.trigger();
      for (const d of destinations) fileActions.get(d)?.trigger();
    },
  });
  const tracks = new Map<Unit, UnitTrack>();
  for (const unit of units) {
    const track: UnitTrack = {
      outcome: undefined,
      runner: new UnitRunner(unit, (u) => reconciler.reconcile(u), {
        signal,
        logger,
        backoff,
        ...(maxAttempts !== undefined && { maxAttempts }),
        onOutcome: (_u, outcome) => {
          track.outcome = outcome;
        },
      }),
    };
    tracks.set(unit, track);
  }

  const fileStatuses = (): FileStatus[] => {
    const out: FileStatus[] = [];
    for (const [unit, track] of tracks) {
      for (const file of unit.files) {
        const record = state.fileRecord(file.destination);
        const status: FileStatus = {
          destination: file.destination,
          secret: refKey(unit.ref),
          secretId: record?.secretId ?? unit.secretId ?? null,
          revision: record?.revision ?? null,
          singleAccess: record?.singleAccess ?? false,
          state: fileState(track.outcome),
        };
        const o = track.outcome;
        if (o !== undefined && o.kind !== "done") status.error = o.reason;
        out.push(status);
      }
    }
    return out;
  };
  const closeAll = async () => {
    await Promise.all([...tracks.values()].map((t) => t.runner.idle()));
    await state.save().catch((err: unknown) => {
      logger.error({ err: (err as Error).message }, "cannot write the state file");
    });
    await Promise.all(debouncers.map((d) => d.close(true)));
  };
  return { logger, state, units, client, token, tracks, fileStatuses, closeAll, backoff };
}

/**
 * The client, signing in with the configured token, or with exchanges of
 * the JWT file (`server.auth`), whose renewing token is returned too.
 */
function connect(
  config: AgentConfig,
  options: AgentOptions,
): { client: AgentClient; token: RenewingToken | undefined } {
  if (options.client !== undefined) return { client: options.client, token: options.token };
  const server = config.server;
  const target = {
    url: server.url,
    protocol: server.protocol,
    ...(server.tls !== undefined && { tls: server.tls }),
  };
  if (server.auth === undefined) {
    return { client: createCofferClient({ ...target, token: server.token }), token: undefined };
  }
  const provider = jwtTokenProvider({
    ...target,
    jwtFile: server.auth.jwtFile,
    timeoutMs: server.callTimeoutMs,
    ...(server.auth.ttlMs !== undefined && { ttlMs: server.auth.ttlMs }),
  });
  return { client: createCofferClient({ ...target, token: provider }), token: provider };
}

function fileState(outcome: Outcome | undefined): FileState {
  if (outcome === undefined) return "pending";
  if (outcome.kind !== "done") return "failed";
  switch (outcome.result) {
    case "written":
    case "unchanged":
      return "current";
    case "removed":
    case "absent":
      return "absent";
    case "kept":
    case "lost":
      return "kept";
  }
}

function selectorsOf(units: Unit[]): WatchSelectorInit[] {
  const seen = new Set<string>();
  const out: WatchSelectorInit[] = [];
  for (const unit of units) {
    const key = refKey(unit.ref);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(
      unit.ref.kind === "id"
        ? { selector: { case: "secretId", value: unit.ref.id } }
        : { selector: { case: "location", value: { path: unit.ref.path, name: unit.ref.name } } },
    );
  }
  return out;
}

/** Does `event` concern `unit`: its id, its location now, or its location before a move. */
function concerns(unit: Unit, event: WatchSecretsResponse): boolean {
  if (unit.secretId !== undefined && unit.secretId === event.secretId) return true;
  if (unit.ref.kind === "id") return unit.ref.id === event.secretId;
  const { path, name } = unit.ref;
  if (event.path === path && event.name === name) return true;
  const previous = event.previousLocation;
  return previous !== undefined && previous.path === path && previous.name === name;
}

/**
 * Starts an agent: loads its state file, starts the health endpoints,
 * follows WatchSecrets and keeps every configured file equal to its target
 * revision until {@link AgentHandle.stop}. Rejects when the state file is
 * unreadable or the health address cannot be bound.
 */
export async function startAgent(
  config: AgentConfig,
  options: AgentOptions = {},
): Promise<AgentHandle> {
  const controller = new AbortController();
  const signal = controller.signal;
  const p = await prepare(config, options, signal, undefined);
  const { logger, state, units, tracks } = p;
  let connected = false;
  let startPassDone = false;

  let resolveReady: () => void = () => {};
  let rejectReady: (err: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // Callers may ignore `ready`: a rejection at stop must not be unhandled.
  ready.catch(() => {});
  let isReady = false;
  const checkReady = () => {
    if (isReady) return;
    for (const track of tracks.values()) {
      if (track.outcome === undefined || track.outcome.kind !== "done") return;
    }
    isReady = true;
    logger.info({ files: config.secrets.length }, "ready: every file rendered or found absent");
    resolveReady();
  };

  const status = (): AgentStatus => ({
    ready: isReady,
    connected,
    cursor: state.cursor,
    secrets: p.fileStatuses(),
  });

  let health: HealthServer | undefined;
  if (config.healthListen !== undefined) {
    health = await startHealthServer(config.healthListen, () => ({
      ready: isReady,
      body: status,
    }));
    logger.info({ address: health.address }, "health endpoints listening");
  }

  const schedule = (unit: Unit): Promise<Outcome | undefined> => {
    const track = tracks.get(unit);
    if (track === undefined) return Promise.resolve(undefined);
    return track.runner.schedule().then((outcome) => {
      checkReady();
      return outcome;
    });
  };

  // Cursors are saved in the order they came, each once the reconciles
  // that its event (and every earlier one) asked for are done: a restart
  // replays whatever was not finished.
  let commits: Promise<void> = Promise.resolve();
  const saveState = () => {
    clearTimeout(cursorSave);
    cursorSave = undefined;
    // Not awaited: during a burst, the cursors that come while one write
    // is on its way share the next write (the newest always lands last).
    void state.save().catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, "cannot write the state file");
    });
  };
  // A cursor that moved with no work of ours (a heartbeat, an event for
  // nothing we write) is saved within CURSOR_SAVE_MS, not at once: a restart
  // before then only replays events that change nothing, and a thousand
  // idle agents do not rewrite their state files on every heartbeat.
  let cursorSave: NodeJS.Timeout | undefined;
  const commitAfter = (cursor: string, work: Promise<Outcome | undefined>[]) => {
    commits = commits.then(async () => {
      const outcomes = await Promise.all(work);
      if (outcomes.some((o) => o === undefined)) return;
      if (cursor === "" || cursor === state.cursor) return;
      state.cursor = cursor;
      if (work.length > 0) saveState();
      else cursorSave ??= setTimeout(saveState, CURSOR_SAVE_MS).unref();
    });
  };

  const onMessage = (event: WatchSecretsResponse, first: boolean) => {
    const kind = WatchEventKind[event.kind] ?? String(event.kind);
    if (first) {
      logger.info({ kind, cursor: event.cursor }, "watching");
      // The server is back: units waiting to retry go now.
      for (const track of tracks.values()) track.runner.wake();
    }
    if (event.kind === WatchEventKind.HEARTBEAT) {
      if (!first) logger.debug({ kind, cursor: event.cursor }, "event received");
      if (!startPassDone) {
        // The stream is established, so a change made from now on comes as
        // an event: read every secret once.
        startPassDone = true;
        commitAfter(event.cursor, units.map(schedule));
      } else {
        commitAfter(event.cursor, []);
      }
      return;
    }
    if (event.kind === WatchEventKind.RESYNC) {
      // The events after our cursor are gone (or this is a stream of another
      // server's outbox): read every secret, then go on from here.
      logger.warn({ kind, cursor: event.cursor }, "event received");
      startPassDone = true;
      commitAfter(event.cursor, units.map(schedule));
      return;
    }
    logger.info(
      {
        kind,
        secretId: event.secretId,
        path: event.path,
        name: event.name,
        ...(event.previousLocation !== undefined && {
          previousPath: event.previousLocation.path,
          previousName: event.previousLocation.name,
        }),
        revision: event.revision,
        singleAccess: event.singleAccess,
        cursor: event.cursor,
      },
      "event received",
    );
    const deleted =
      event.kind === WatchEventKind.SECRET_DELETED ||
      event.kind === WatchEventKind.SECRET_DESTROYED;
    const matched = units.filter((u) => concerns(u, event));
    for (const unit of matched) if (deleted) unit.secretDeleted = true;
    commitAfter(event.cursor, matched.map(schedule));
  };

  logger.info(
    {
      server: config.server.url,
      protocol: config.server.protocol,
      // Where the JWT is read from (a path, not a secret); never the JWT or a token.
      ...(config.server.auth !== undefined && { jwtFile: config.server.auth.jwtFile }),
      projectId: config.projectId,
      files: config.secrets.length,
      cursor: state.cursor,
    },
    "agent starting",
  );
  if (p.token !== undefined) keepRenewing(p.token, { logger, signal, backoff: p.backoff() });
  const watching = runWatch({
    client: p.client,
    logger,
    projectId: config.projectId,
    region: config.region,
    selectors: selectorsOf(units),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    cursor: state.cursor,
    signal,
    ...(options.backoff !== undefined && { backoff: options.backoff }),
    onMessage,
    ...(p.token !== undefined && { onTokenRenewed: renewalsOf(p.token) }),
    onConnection: (up) => {
      connected = up;
    },
  });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      controller.abort();
      await watching;
      // Reconciles in flight finish (their calls have deadlines); the cursors
      // they free are set, then closeAll writes the state one last time.
      await commits;
      clearTimeout(cursorSave);
      await p.closeAll();
      await health?.close();
      if (!isReady) rejectReady(new Error("the agent stopped before it was ready"));
      logger.info({ cursor: state.cursor }, "stopped");
    })();
    return stopping;
  };

  return {
    ready,
    healthAddress: health?.address,
    status,
    stop,
  };
}

/**
 * Renders every configured file once and returns (for init containers):
 * no watch. `ok` is false when a secret was missing or a file could not be
 * rendered; transient errors are retried a few times first.
 */
export async function runOnce(
  config: AgentConfig,
  options: AgentOptions = {},
): Promise<OnceResult> {
  const controller = new AbortController();
  const p = await prepare(config, options, controller.signal, 5);
  const { logger, units, tracks } = p;
  logger.info({ server: config.server.url, files: config.secrets.length }, "rendering once");
  await Promise.all(units.map((u) => tracks.get(u)?.runner.schedule()));
  await p.closeAll();
  const secrets = p.fileStatuses();
  let ok = true;
  for (const unit of units) {
    const outcome = tracks.get(unit)?.outcome;
    const good =
      outcome?.kind === "done" &&
      (outcome.result === "written" || outcome.result === "unchanged" || outcome.result === "kept");
    if (!good) {
      ok = false;
      logger.error(
        {
          secret: refKey(unit.ref),
          destinations: unit.files.map((f) => f.destination),
          result:
            outcome === undefined
              ? "none"
              : outcome.kind === "done"
                ? outcome.result
                : outcome.kind,
          ...(outcome !== undefined && outcome.kind !== "done" && { reason: outcome.reason }),
        },
        "not rendered",
      );
    }
  }
  logger.info({ ok, files: secrets.length }, "rendered once");
  return { ok, secrets };
}
