import http2 from "node:http2";

/**
 * One GET over cleartext HTTP/2 with prior knowledge (as h2load sends its
 * REST requests): the answer's status, content type and body. For the
 * sample call that checks an answer's payload before a measurement.
 */
export async function h2cGet(
  url: string,
  headers: Record<string, string>,
  timeoutMs = 5_000,
): Promise<{ status: number; contentType: string; body: Buffer }> {
  const u = new URL(url);
  const session = http2.connect(u.origin);
  try {
    return await new Promise((resolve, reject) => {
      session.once("error", reject);
      const req = session.request({ ":method": "GET", ":path": u.pathname + u.search, ...headers });
      const chunks: Buffer[] = [];
      let status = 0;
      let contentType = "";
      req.setTimeout(timeoutMs, () => {
        req.close(http2.constants.NGHTTP2_CANCEL);
        reject(new Error(`GET ${u.pathname}: no answer in ${timeoutMs} ms`));
      });
      req.once("response", (h) => {
        status = Number(h[":status"]);
        contentType = String(h["content-type"] ?? "");
      });
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.once("end", () => resolve({ status, contentType, body: Buffer.concat(chunks) }));
      req.once("error", reject);
    });
  } finally {
    session.close();
  }
}
