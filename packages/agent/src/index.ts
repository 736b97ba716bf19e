/**
 * `@coffer/agent`: keeps local files equal to Coffer secrets, following
 * WatchSecrets. The `coffer-agent` command runs {@link startAgent} (or
 * {@link runOnce} with `--once`) on a config loaded by {@link loadAgentConfig}.
 */

export {
  type AgentHandle,
  type AgentOptions,
  type AgentStatus,
  type FileState,
  type FileStatus,
  type OnceResult,
  runOnce,
  startAgent,
} from "./agent.ts";
export { AgentStartError, runAgentCommand } from "./command.ts";
export {
  type AgentConfig,
  AgentConfigError,
  type AgentProtocol,
  type ConfigContext,
  type FileFormat,
  loadAgentConfig,
  type OnChangeConfig,
  parseAgentConfig,
  type RevisionTarget,
  type SecretFileConfig,
  type SecretRef,
} from "./config.ts";
export { createAgentLogger } from "./logger.ts";
export type { AgentClient } from "./reconcile.ts";
export { StateFileError } from "./state.ts";
