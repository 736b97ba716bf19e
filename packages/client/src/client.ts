import type { SecretService } from "@coffer/api";
import type { Client } from "@connectrpc/connect";

/** A typed client of every RPC of `coffer.secretmanager.v1.SecretService`. */
export type CofferClient = Client<typeof SecretService>;
