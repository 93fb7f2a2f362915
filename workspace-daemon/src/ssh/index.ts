export { generateHostKey, HOST_KEY_FILE, loadOrCreateHostKey, publicKeyLine } from "./host-key.ts";
export { SshServer, type SshServerOptions } from "./ssh-server.ts";
export { serveSftp } from "./sftp-server.ts";
