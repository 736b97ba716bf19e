import { createClient } from "@scaleway/sdk-client";
import { Secretv1beta1 } from "@scaleway/sdk-secret";
import type { ServerProcess } from "../../support/server-process.ts";
import { REGION } from "./backends.ts";

/** The Scaleway Secret Manager client, as a Scaleway user writes it. */
export type ScalewaySecrets = Secretv1beta1.API;

/**
 * The real `@scaleway/sdk-secret` client pointed at a Coffer server's HTTP
 * port, authenticated with a Coffer token. A Coffer token is not a UUID, so
 * it cannot be the SDK's `secretKey` (which it checks): an interceptor sends
 * it as `X-Auth-Token`, the header the SDK would send its secret key in.
 * Without a token, the requests carry none.
 */
export function scalewaySecrets(
  server: ServerProcess,
  token: string | undefined,
  defaultProjectId?: string,
): ScalewaySecrets {
  const client = createClient({
    apiURL: server.httpUrl,
    defaultRegion: REGION,
    ...(defaultProjectId !== undefined && { defaultProjectId }),
    interceptors:
      token === undefined
        ? []
        : [
            {
              request: ({ request }) => {
                const withToken = request.clone();
                withToken.headers.set("X-Auth-Token", token);
                return withToken;
              },
            },
          ],
  });
  return new Secretv1beta1.API(client);
}

/** The error a call rejected with; fails the test when it resolved. */
export async function refusal(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    (answer) => {
      throw new Error(`expected a refusal; the call answered ${JSON.stringify(answer)}`);
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
