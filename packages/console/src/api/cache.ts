import { create } from "@bufbuild/protobuf";
import { GetSecretResponseSchema, type Secret, SecretService } from "@coffer/api";
import { createConnectQueryKey, useTransport } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useCallback } from "react";

/**
 * After a change: put the secret the server answered with in GetSecret's
 * cache entry at once (so the next change sends its new etag), then have
 * every SecretService read fetched again (lists, folders, versions).
 */
export function useSecretChanged() {
  const queryClient = useQueryClient();
  const transport = useTransport();
  return useCallback(
    async (region: string, secret?: Secret) => {
      if (secret !== undefined) {
        queryClient.setQueryData(
          createConnectQueryKey({
            schema: SecretService.method.getSecret,
            input: { region, secretId: secret.id },
            transport,
            cardinality: "finite",
          }),
          create(GetSecretResponseSchema, { secret }),
        );
      }
      await queryClient.invalidateQueries({
        queryKey: createConnectQueryKey({ schema: SecretService, cardinality: undefined }),
      });
    },
    [queryClient, transport],
  );
}
