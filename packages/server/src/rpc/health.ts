import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@coffer/api/grpc/health/v1";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { HealthStatus, Serving } from "../ops/health.ts";

export { Health };

const wire: Record<Serving | "SERVICE_UNKNOWN", ServingStatus> = {
  SERVING: ServingStatus.SERVING,
  NOT_SERVING: ServingStatus.NOT_SERVING,
  SERVICE_UNKNOWN: ServingStatus.SERVICE_UNKNOWN,
};

/**
 * grpc.health.v1.Health over the server's {@link HealthStatus}. It is served
 * outside the call chain, so it needs no token: it tells only whether the
 * server and each region's database are serving, which a load balancer or an
 * orchestrator must learn before it has any credential. Its calls are not
 * audited, logged or counted (probes would drown the real traffic).
 */
export function healthService(status: HealthStatus): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const serving = status.get(req.service);
      if (serving === undefined) {
        throw new ConnectError(
          `unknown service "${req.service}"; known: ${[...status.all().keys()].map((n) => `"${n}"`).join(", ")}`,
          Code.NotFound,
        );
      }
      return { status: wire[serving] };
    },
    list() {
      const statuses: Record<string, { status: ServingStatus }> = {};
      for (const [name, serving] of status.all()) statuses[name] = { status: wire[serving] };
      return { statuses };
    },
    async *watch(req, ctx) {
      for await (const serving of status.watch(req.service, ctx.signal)) {
        yield { status: wire[serving] };
      }
      // The watch ended without the client leaving: the server is shutting
      // down. UNAVAILABLE tells the client to retry, on another replica.
      if (!ctx.signal.aborted) {
        throw new ConnectError("the server is shutting down", Code.Unavailable);
      }
    },
  };
}
