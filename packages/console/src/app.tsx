import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { RouterProvider } from "@tanstack/react-router";
import { useEffect, useState } from "react";
import { createQueryClient } from "./api/query-client.ts";
import { createTransport } from "./api/transport.ts";
import { createAppRouter } from "./router.tsx";
import { readToken } from "./session/session.ts";
import { SessionProvider, useSession } from "./session/session-context.tsx";

/**
 * Transport, query cache, session and router, once per page. Tests pass a
 * transport of their own (createRouterTransport).
 */
export function App({ transport: given }: { transport?: Transport } = {}) {
  const [transport] = useState(() => given ?? createTransport());
  const [queryClient] = useState(() => createQueryClient());
  const [router] = useState(() => createAppRouter());
  return (
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <SessionProvider onSignOut={() => router.navigate({ to: "/sign-in" })}>
          <EndSessionOnRevokedToken
            onEnded={() => router.navigate({ to: "/sign-in", search: { ended: true } })}
          />
          <RouterProvider router={router} />
        </SessionProvider>
      </QueryClientProvider>
    </TransportProvider>
  );
}

/**
 * A token revoked or expired while the console is open: the next read gets
 * UNAUTHENTICATED; forget the session and say so on the sign-in screen.
 */
function EndSessionOnRevokedToken({ onEnded }: { onEnded: () => void }) {
  const queryClient = useQueryClient();
  const { signedIn, forget } = useSession();
  useEffect(
    () =>
      queryClient.getQueryCache().subscribe((event) => {
        if (!signedIn || event.type !== "updated" || event.action.type !== "error") return;
        // Signed out meanwhile (a read that raced the sign-out): nothing to end.
        if (readToken() === undefined) return;
        if (ConnectError.from(event.action.error).code !== Code.Unauthenticated) return;
        forget();
        onEnded();
      }),
    [queryClient, signedIn, forget, onEnded],
  );
  return null;
}
