/**
 * What the Node entry (`@coffer/client`) and the browser entry
 * (`@coffer/client/web`) both export, besides the API itself.
 */

export {
  type AccessClient,
  type AccessOptions,
  accessSecret,
  parseRef,
  type Revision,
  type SecretRef,
} from "./access.ts";
export { Backoff, type BackoffOptions, backoffDelay, sleep } from "./backoff.ts";
export { type AccessAnswer, verifyChecksum, verifyChecksums } from "./checksum.ts";
export type { CofferClient } from "./client.ts";
export {
  type Coffer,
  type CofferCommonOptions,
  type CofferDefaults,
  cofferInterceptors,
  cofferOver,
} from "./coffer.ts";
export { crc32 } from "./crc32.ts";
export {
  ChecksumError,
  type FieldViolation,
  fieldViolations,
  SecretTypeError,
  SingleAccessError,
  secretTypeName,
  TokenExchangeError,
} from "./errors.ts";
export { allPages } from "./pages.ts";
export { isRetrySafe, type RetryEvent, type RetryOptions, retryInterceptor } from "./retry.ts";
export type {
  BasicCredentialsPayload,
  DatabaseCredentialsPayload,
  KeyValuePayload,
  SecretJsonByType,
  SecretValue,
  SecretValueOf,
  SshKeyPayload,
} from "./secret-value.ts";
export {
  type ExchangeSource,
  exchangingProvider,
  type JwtExchangeOptions,
  type JwtTokenProvider,
  type RenewableTokenProvider,
  type TokenProvider,
  type TokenRenewal,
} from "./token-provider.ts";
export {
  type ReconnectEvent,
  SecretWatch,
  type WatchClient,
  type WatchEvent,
  type WatchOptions,
  type WatchSelectorSpec,
  watchSecrets,
} from "./watch.ts";
