import type { SecretRow } from "../db/schema.ts";
import { aborted } from "./errors.ts";

/** The etag clients see: the secret's generation, which every mutation bumps. */
export function etagOf(secret: Pick<SecretRow, "generation">): string {
  return `"${secret.generation}"`;
}

/** Refuses a change whose etag, when the caller sent one, is not the secret's current one. */
export function checkEtag(secret: Pick<SecretRow, "generation" | "id">, etag: string): void {
  if (etag !== "" && etag !== etagOf(secret)) {
    throw aborted(
      `etag ${etag} is stale: secret ${secret.id} changed since it was read (now ${etagOf(secret)}); read it again and retry`,
    );
  }
}
