import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { peerFromNodeRequest } from "./peer.ts";

let server: http.Server;
let port: number;
let seen: string | undefined;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen = peerFromNodeRequest(req);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => {
  server.close();
});

it("renders the client's address and port like grpc-js's getPeer", async () => {
  const clientPort = await new Promise<number | undefined>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(local));
    });
    let local: number | undefined;
    req.on("socket", (socket) => socket.on("connect", () => (local = socket.localPort)));
    req.on("error", reject);
  });
  expect(seen).toBe(`127.0.0.1:${clientPort}`);
});
