/**
 * The baselines the tunnel is compared against, run in a child process so client and
 * server sit in different processes as they do across the tunnel:
 * - a trivial HTTP/1.1 server (keep-alive) answering "ok";
 * - a TCP server that writes the file given as argv[2] to every connection, then ends it.
 * Reports its ports over the IPC channel and exits when the parent disconnects.
 */
import { createReadStream } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { pipeline } from "node:stream";

/** Same chunk size the daemon's raw file endpoint reads with. */
const STREAM_CHUNK_BYTES = 256 * 1024;

export interface LoopbackPorts {
  httpPort: number;
  tcpPort: number;
}

const filePath = process.argv[2];
if (!filePath || !process.send) {
  process.stderr.write("usage: fork loopback-peer.ts <file to serve over TCP> (needs an IPC channel)\n");
  process.exit(2);
}

const body = Buffer.from("ok");
const httpServer = http.createServer((request, response) => {
  request.resume();
  response.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  response.end(body);
});
httpServer.keepAliveTimeout = 60_000;

const tcpServer = net.createServer((socket) => {
  pipeline(createReadStream(filePath, { highWaterMark: STREAM_CHUNK_BYTES }), socket, () => socket.destroy());
});

const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
const ports: LoopbackPorts = { httpPort: await listen(httpServer), tcpPort: await listen(tcpServer) };
process.send(ports);
process.on("disconnect", () => process.exit(0));
