import { createWriteStream, type WriteStream } from "node:fs";

/** An audit event as one JSON line (snake_case, like the proto's JSON names). */
export interface AuditEventLine {
  time: string;
  id: string;
  region: string;
  token_id?: string;
  project_id?: string;
  method: string;
  secret_id?: string;
  secret_path?: string;
  secret_name?: string;
  revision?: number;
  outcome: string;
  request_id: string;
  peer?: string;
  /** Calls the event stands for, when more than one may be (aggregated refusals); its last line has the final count. */
  count?: number;
  /** The display prefix of the token a refused call presented. */
  token_prefix?: string;
  /** The token a token-management call created or revoked, or that an exchange issued. */
  target_token_id?: string;
  /** For ExchangeToken: the JWT's issuer and subject, the binding, and a refusal's reason. */
  issuer?: string;
  subject?: string;
  binding_id?: string;
  reason?: string;
}

/** A copy of the audit trail as JSON lines, for log shippers and SIEMs. */
export interface AuditLog {
  write(line: AuditEventLine): void;
  close(): Promise<void>;
}

/**
 * `COFFER_AUDIT_LOG`: "stdout", or a file path appended to (mode 0600). The
 * database stays the record; this copy is best effort and never blocks a call.
 */
export function openAuditLog(target: string): AuditLog {
  const out: NodeJS.WritableStream | WriteStream =
    target === "stdout" ? process.stdout : createWriteStream(target, { flags: "a", mode: 0o600 });
  return {
    write: (line) => {
      out.write(`${JSON.stringify({ audit: true, ...line })}\n`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (out === process.stdout) resolve();
        else (out as WriteStream).end(() => resolve());
      }),
  };
}
