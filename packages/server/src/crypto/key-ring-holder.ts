import { timingSafeEqual } from "node:crypto";
import type { KeyRing } from "./key-ring.ts";

/**
 * The key ring a running server uses, replaceable without a restart so that
 * a master key rotation can make a new key active while calls are served.
 *
 * Invariant: a replacement ring holds every key of the ring it replaces, with
 * the same bytes. A reader that fetched a row wrapped with any key the server
 * ever held can therefore always unwrap it with whatever ring it reads next.
 * Keys are retired by restarting with a smaller ring, once no row needs them.
 */
export class KeyRingHolder {
  #ring: KeyRing;

  constructor(ring: KeyRing) {
    checkActive(ring);
    this.#ring = ring;
  }

  /** The current ring. Bound, so it can be passed as is (`keyRing: holder.get`). */
  readonly get = (): KeyRing => this.#ring;

  /**
   * Replaces the ring. New data keys are wrapped with the new active key from
   * the next call on.
   *
   * @throws Error when the ring lacks its active key, or drops or changes a
   * key of the current ring.
   */
  set(ring: KeyRing): void {
    checkActive(ring);
    for (const [id, key] of this.#ring.keys) {
      const kept = ring.keys.get(id);
      if (kept === undefined || kept.length !== key.length || !timingSafeEqual(kept, key)) {
        throw new Error(
          `the new key ring must keep master key ${JSON.stringify(id)} unchanged: rows may still be wrapped with it`,
        );
      }
    }
    this.#ring = ring;
  }
}

function checkActive(ring: KeyRing): void {
  if (!ring.keys.has(ring.activeId)) {
    throw new Error(`the key ring lacks its active key ${JSON.stringify(ring.activeId)}`);
  }
}
