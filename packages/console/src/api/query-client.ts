import { MutationCache, QueryCache, QueryClient } from "@tanstack/react-query";
import { retryDelay, retryRead } from "./errors.ts";

/**
 * The one query cache. Reads retry a lost connection only; changes never
 * retry (a second CreateSecret is not the same as the first). `onError` sees
 * every failed call, for the session to notice a revoked token.
 */
export function createQueryClient(onError: (error: unknown) => void = () => {}): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({ onError }),
    mutationCache: new MutationCache({ onError }),
    defaultOptions: {
      queries: {
        retry: retryRead,
        retryDelay,
        staleTime: 10_000,
        refetchOnWindowFocus: false,
      },
      mutations: { retry: false },
    },
  });
}
