import type { SuiteOptions } from "vitest";

declare module "vitest" {
  interface TaskMeta {
    /** Why the suite or test was skipped; printed by scripts/test-summary.mjs. */
    skipReason?: string;
  }
}

/**
 * Options for a suite that runs only when `reason` is undefined; otherwise it
 * is skipped and `reason` is reported at the end of `npm test`
 * (scripts/test-summary.mjs), so that no suite is skipped in silence:
 * `describe("...", runUnless(reasonToSkip), () => ...)`.
 */
export function runUnless(reason: string | undefined): SuiteOptions {
  return reason === undefined ? {} : { skip: true, meta: { skipReason: reason } };
}
