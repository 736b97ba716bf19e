export type { EphemeralPolicyInput } from "./ephemeral-policy.ts";
export { etagOf } from "./etag.ts";
