import { createClient } from "@scaleway/sdk-client";
import { Secretv1beta1 } from "@scaleway/sdk-secret";
import type { ServerProcess } from "../../support/server-process.ts";
import { REGION } from "./backends.ts";
import type { ScalewayKey } from "./coffer.ts";

/** The Scaleway Secret Manager client, as a Scaleway user writes it. */
export type ScalewaySecrets = Secretv1beta1.API;

/**
 * The real `@scaleway/sdk-secret` client pointed at a Coffer server's HTTP
 * port, configured as a Scaleway user configures it: with a Scaleway-style
 * key (access key and secret key, which the SDK checks and sends as
 * `X-Auth-Token`). With a Coffer token instead, which is not a UUID and so
 * cannot be the SDK's secret key, an interceptor sends the token in that
 * header. Without either, the requests carry no credential.
 */
export function scalewaySecrets(
  server: ServerProcess,
  auth: ScalewayKey | string | undefined,
  defaultProjectId?: string,
): ScalewaySecrets {
  const client = createClient({
    apiURL: server.httpUrl,
    defaultRegion: REGION,
    ...(defaultProjectId !== undefined && { defaultProjectId }),
    ...(typeof auth === "object" && { accessKey: auth.accessKey, secretKey: auth.secretKey }),
    interceptors: typeof auth === "string" ? [sendAsAuthToken(auth)] : [],
  });
  return new Secretv1beta1.API(client);
}

/** An interceptor that sends `token` as the SDK sends its secret key. */
function sendAsAuthToken(token: string) {
  return {
    request: ({ request }: { request: Request }) => {
      const withToken = request.clone();
      withToken.headers.set("X-Auth-Token", token);
      return withToken;
    },
  };
}

/**
 * The error a call rejected with; fails the test when it resolved, naming
 * the answer's fields but not their values (an access answers a payload).
 */
export async function refusal(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    (answer) => {
      const fields = typeof answer === "object" && answer !== null ? Object.keys(answer) : [];
      throw new Error(`expected a refusal; the call answered {${fields.join(", ")}}`);
    },
    (err: unknown) => {
      if (!(err instanceof Error)) throw new Error(`rejected with a non-Error: ${String(err)}`);
      return err;
    },
  );
}

/** Standard base64 of text or bytes, as the SDK's `data` is written. */
export function base64(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64");
}

/** The bytes of an access's base64 `data`. */
export function bytesOf(data: string): Buffer {
  return Buffer.from(data, "base64");
}
