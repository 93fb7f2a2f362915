import { once } from "node:events";
import http from "node:http";
import net, { type AddressInfo } from "node:net";

export interface UpgradeProxy {
  /** The proxy's address with the target URL's path. */
  url: string;
  port: number;
  /** The Upgrade header of every upgrade request seen, in order. */
  upgrades: string[];
  close(): void;
}

/**
 * An HTTP proxy for upgrades, for tests: `decide` answers a status of its own (an empty body) or
 * lets the upgrade through to `targetUrl` (request head and all, then bytes both ways). Anything
 * that is not an upgrade gets a 404. What a proxy that passes only some upgrades does to a client.
 */
export async function startUpgradeProxy(targetUrl: string, decide: (request: http.IncomingMessage) => "forward" | number): Promise<UpgradeProxy> {
  const target = new URL(targetUrl);
  const upgrades: string[] = [];
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  server.on("upgrade", (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    upgrades.push(request.headers.upgrade ?? "");
    const decision = decide(request);
    if (decision !== "forward") {
      socket.end(`HTTP/1.1 ${decision} ${http.STATUS_CODES[decision]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname, () => {
      const headerLines: string[] = [];
      for (let index = 0; index < request.rawHeaders.length; index += 2) headerLines.push(`${request.rawHeaders[index]}: ${request.rawHeaders[index + 1]}\r\n`);
      upstream.write(`${request.method} ${request.url} HTTP/1.1\r\n${headerLines.join("")}\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    port,
    upgrades,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
