import { describeError, isConnectionLost } from "../api/errors.ts";

/** A refusal or failure, in the server's words, announced to screen readers. */
export function ProblemMessage({
  error,
  id,
  read = false,
}: {
  error: unknown;
  id?: string;
  /** The error is a read's (retried after a lost connection), not a change's. */
  read?: boolean;
}) {
  if (error === null || error === undefined) return null;
  const problem = describeError(error, { read });
  return (
    <div
      id={id}
      className={isConnectionLost(error) ? "notice notice-warn" : "notice notice-error"}
      role="alert"
    >
      {problem.message}
    </div>
  );
}

/**
 * What a screen shows while its read is not there: loading, retrying after a
 * lost connection (react-query keeps the query pending while it retries), or
 * the refusal.
 */
export function QueryState({
  query,
  what,
}: {
  query: { isPending: boolean; error: unknown; failureReason: unknown };
  what: string;
}) {
  if (query.error) return <ProblemMessage error={query.error} read />;
  if (query.failureReason && isConnectionLost(query.failureReason)) {
    return <ProblemMessage error={query.failureReason} read />;
  }
  if (query.isPending) {
    return (
      <p className="loading" role="status">
        Loading {what}…
      </p>
    );
  }
  return null;
}
