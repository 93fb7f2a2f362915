import net from "node:net";

/**
 * Opens a TCP connection to host:port through a SOCKS5 proxy without authentication
 * (RFC 1928 CONNECT), as tailscaled's `--socks5-server` offers on loopback.
 * Resolves with the socket once the proxy reports success.
 */
export function socks5Connect(proxy: { host: string; port: number }, target: { host: string; port: number }, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxy.port, proxy.host);
    socket.setNoDelay(true);
    let buffered = Buffer.alloc(0);
    let stage: "greeting" | "connect" = "greeting";
    const timer = setTimeout(() => fail(new Error(`SOCKS5 connect to ${target.host}:${target.port} timed out after ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once("error", fail);
    socket.once("connect", () => socket.write(Buffer.from([0x05, 0x01, 0x00])));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (stage === "greeting") {
        if (buffered.length < 2) return;
        if (buffered[0] !== 0x05 || buffered[1] !== 0x00) return fail(new Error("SOCKS5 proxy refused the no-authentication method"));
        buffered = buffered.subarray(2);
        stage = "connect";
        socket.write(connectRequest(target.host, target.port));
      }
      if (buffered.length < 5) return;
      if (buffered[1] !== 0x00) return fail(new Error(`SOCKS5 proxy could not connect to ${target.host}:${target.port} (reply ${buffered[1]})`));
      const addressType = buffered[3];
      const addressLength = addressType === 0x01 ? 4 : addressType === 0x04 ? 16 : 1 + (buffered[4] ?? 0);
      const replyLength = 4 + addressLength + 2;
      if (buffered.length < replyLength) return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", fail);
      const rest = buffered.subarray(replyLength);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on("data", onData);
  });
}

function connectRequest(host: string, port: number): Buffer {
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  const ipVersion = net.isIP(host);
  if (ipVersion === 4) return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x01]), Buffer.from(host.split(".").map(Number)), portBytes]);
  if (ipVersion === 6) return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x04]), ipv6Bytes(host), portBytes]);
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, name.length]), name, portBytes]);
}

function ipv6Bytes(address: string): Buffer {
  const [head = "", tail = ""] = address.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups] : headGroups;
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2));
  return bytes;
}
