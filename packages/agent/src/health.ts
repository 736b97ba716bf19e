import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A health endpoint's view of the agent. Never a payload. */
export interface HealthView {
  ready: boolean;
  body: () => unknown;
}

/** A listening health server. */
export interface HealthServer {
  /** `host:port` as bound (the real port when 0 was asked for). */
  address: string;
  close(): Promise<void>;
}

/**
 * HTTP health endpoints: `GET /healthz` answers 200 while the process is
 * alive; `GET /readyz` 200 once every secret was rendered or found absent at
 * least once, 503 before. Both carry the agent's status as JSON.
 */
export async function startHealthServer(
  listen: { host: string; port: number },
  view: () => HealthView,
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://agent");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    let status: number;
    const current = view();
    if (url.pathname === "/healthz") status = 200;
    else if (url.pathname === "/readyz") status = current.ready ? 200 : 503;
    else {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}\n');
      return;
    }
    const body = `${JSON.stringify(current.body())}\n`;
    res
      .writeHead(status, { "content-type": "application/json", "cache-control": "no-store" })
      .end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
