import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";

/** What the console shows while reads are retried after a lost connection. */
export const CONNECTION_LOST = "Connection to the server lost — retrying";
/** The same for a change, which is never retried (it may or may not have been applied). */
export const CONNECTION_LOST_CHANGE =
  "Connection to the server lost: check that the server is running, then try again.";

/** A refusal, in words for a person, and the request field it names, if any. */
export interface Problem {
  code: Code;
  /** A sentence to show. Never holds a payload or a token: the server sends neither. */
  message: string;
  /**
   * For INVALID_ARGUMENT: the request field the server named, as the proto
   * path it sent (snake_case, e.g. "path" or "first_version.data.port"),
   * so a form can show the message next to that field.
   */
  field?: string;
  /** Every field violation the server attached: field path -> rule. */
  violations: Map<string, string>;
}

/** Whether an error is a lost connection (server down, network gone): reads retry it. */
export function isConnectionLost(error: unknown): boolean {
  if (error instanceof TypeError) return true; // fetch() itself failed
  const e = ConnectError.from(error);
  if (e.code === Code.Unavailable) return true;
  // connect-web wraps a failed fetch as Unknown or Internal with its TypeError as cause.
  return e.cause instanceof TypeError;
}

const plain: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "Your access token is not valid (unknown, revoked or expired).",
  [Code.PermissionDenied]: "Your access token does not allow this.",
  [Code.NotFound]: "Not found: it does not exist, or your token cannot see it.",
  [Code.AlreadyExists]: "It already exists.",
  [Code.Aborted]: "Someone changed this meanwhile. Reload it and try again.",
  [Code.ResourceExhausted]: "Too many requests or a quota is reached. Wait a moment and try again.",
  [Code.DeadlineExceeded]: "The server took too long to answer. Try again.",
  [Code.Internal]: "The server met an unexpected error.",
};

/** Capitalises the server's message ("secret is protected" -> "Secret is protected."). */
function sentence(text: string): string {
  const t = text.trim();
  if (t === "") return t;
  const first = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/**
 * A field path as a person reads it: "first_version.data.port" -> "port",
 * "tags[1]" -> "tags (item 2)".
 */
export function fieldLabel(field: string): string {
  const last = field.split(".").pop() ?? field;
  const indexed = /^(.*)\[(\d+)\]$/.exec(last);
  const name = (indexed?.[1] ?? last).replaceAll("_", " ");
  return indexed ? `${name} (item ${Number(indexed[2]) + 1})` : name;
}

/**
 * Turns any error from a call into a Problem (`read`: the call was a read,
 * which react-query retries after a lost connection): the server's own message
 * (which names the field and the rule for INVALID_ARGUMENT, and says why
 * for FAILED_PRECONDITION), or plain words for codes whose message is terse.
 */
export function describeError(error: unknown, { read = false } = {}): Problem {
  if (isConnectionLost(error)) {
    const message = read ? CONNECTION_LOST : CONNECTION_LOST_CHANGE;
    return { code: Code.Unavailable, message, violations: new Map() };
  }
  const e = ConnectError.from(error);
  const violations = new Map<string, string>();
  for (const detail of e.findDetails(BadRequestSchema)) {
    for (const v of detail.fieldViolations) violations.set(v.field, v.description);
  }
  const field = violations.keys().next().value;
  const server = e.rawMessage;
  let message: string;
  if (field !== undefined) {
    // "first_version.data.port" + "must be ..." -> "Port must be ...".
    message = sentence(`${fieldLabel(field)} ${violations.get(field)}`);
  } else if (e.code === Code.InvalidArgument || e.code === Code.FailedPrecondition) {
    message = sentence(server || "The request was refused.");
  } else if (e.code === Code.Internal) {
    // INTERNAL carries a request id for the operator, never details.
    message = `${plain[Code.Internal]} ${sentence(server)}`.trim();
  } else if ((e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) && server) {
    // The server says which token or permission is missing: its words.
    message = sentence(server);
  } else {
    message = plain[e.code] ?? sentence(server || "Something went wrong.");
  }
  return { code: e.code, message, violations, ...(field === undefined ? {} : { field }) };
}

/**
 * The message for one form field: the violation the server named for it,
 * matched on the last segments so "secret.name", "name" and
 * "first_version.data.port" find the field a form calls "name" or "port",
 * and "tags[1]" the field "tags".
 */
export function fieldError(problem: Problem | undefined, field: string): string | undefined {
  if (problem === undefined) return undefined;
  for (const [path, rule] of problem.violations) {
    const bare = path.replace(/\[\d+\]/g, ""); // "tags[1]" names the field "tags"
    if (bare === field || bare.endsWith(`.${field}`)) return rule;
  }
  return undefined;
}

/** react-query's retry rule for reads: only a lost connection is worth another try. */
export function retryRead(failureCount: number, error: unknown): boolean {
  return isConnectionLost(error) && failureCount < 30;
}

/** Backoff for those retries: 0.5 s doubling, at most 10 s. */
export function retryDelay(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 10_000);
}
