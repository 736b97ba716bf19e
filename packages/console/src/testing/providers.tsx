import { SecretService } from "@coffer/api";
import type { ServiceImpl, Transport } from "@connectrpc/connect";
import { createRouterTransport } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement, ReactNode } from "react";

/** The providers the app gives its screens, over a given transport. */
export function TestProviders({
  transport,
  queryClient,
  children,
}: {
  transport: Transport;
  queryClient: QueryClient;
  children: ReactNode;
}) {
  return (
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>{children}</QueryClientProvider>
    </TransportProvider>
  );
}

/**
 * Renders a component under test over an in-memory SecretService whose
 * handlers the test passes (connect-es's router transport, so requests and
 * errors go through the real serialization).
 */
export function renderWithService(
  ui: ReactElement,
  impl: Partial<ServiceImpl<typeof SecretService>>,
) {
  const transport = createRouterTransport(({ service }) => {
    service(SecretService, impl);
  });
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <TestProviders transport={transport} queryClient={queryClient}>
      {ui}
    </TestProviders>,
  );
}
