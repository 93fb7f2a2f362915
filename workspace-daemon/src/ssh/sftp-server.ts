import { constants, readSync, writeSync, type Dir, type Stats } from "node:fs";
import { chmod, chown, lstat, mkdir, open, opendir, readlink, rename, rmdir, stat, symlink, truncate, unlink, utimes, type FileHandle } from "node:fs/promises";
import { posix } from "node:path";
import type { Logger } from "pino";
import ssh2 from "ssh2";
import type { Attributes, FileEntry, InputAttributes, SFTPWrapper } from "ssh2";

const { STATUS_CODE, OPEN_MODE } = ssh2.utils.sftp;

/**
 * Largest READ answered in one reply: the max-read-length our (patched) ssh2 advertises through
 * limits@openssh.com, as OpenSSH's sftp-server does; OpenSSH's sftp and scp then read in pieces
 * of this size rather than 32 KiB (patches/ssh2@1.17.0.patch). A shorter reply is legal: clients ask again.
 */
const MAX_READ_BYTES = 256 * 1024 - 1024;
// READ and WRITE data (at most ~255 KiB a packet) moves with blocking calls, as OpenSSH's sftp-server
// does: through the thread pool each call cost ~0.4 ms of wake-ups on this kind of VM, more than
// copying the bytes to or from the page cache (docs/benchmarks.md, "Interactive access").
const READDIR_BATCH = 256;

/**
 * `queue` orders a handle's replies. Clients pipeline many READs and WRITEs, and OpenSSH's
 * scp (9.x) truncates the file it copies at the last reply that came in order, in both
 * directions, silently. So every handle answers in request order, as sftp-server does.
 */
type OpenHandle =
  | { kind: "file"; file: FileHandle; path: string; queue: Promise<void> }
  | { kind: "directory"; dir: Dir; path: string; started: boolean; done: boolean; queue: Promise<void> };

export interface SftpOptions {
  /** What relative paths resolve against (the session's starting directory). */
  root: string;
  log: Logger;
}

/**
 * The server side of SFTP v3 over `sftp`, backed by the workspace's filesystem: the
 * requests OpenSSH's `sftp` and `scp` (which speaks SFTP since OpenSSH 9) and IDEs send.
 * Metadata requests run their filesystem calls asynchronously; file data moves synchronously
 * (see MAX_READ_BYTES); every handle's replies go out in request order.
 */
export function serveSftp(sftp: SFTPWrapper, options: SftpOptions): void {
  const handles = new Map<number, OpenHandle>();
  let nextHandle = 1;
  const resolve = (path: string) => posix.resolve(options.root, path || ".");

  const handleOf = (buffer: Buffer): OpenHandle | undefined => (buffer.length === 4 ? handles.get(buffer.readUInt32BE(0)) : undefined);
  const addHandle = (handle: OpenHandle): Buffer => {
    const id = nextHandle++;
    handles.set(id, handle);
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(id, 0);
    return buffer;
  };

  /** Runs a request; a thrown filesystem error becomes the matching SFTP status. Never rejects. */
  const respond = (requestId: number, work: () => Promise<void>): Promise<void> =>
    work().catch((error: NodeJS.ErrnoException) => {
      const [code, message] = statusOf(error);
      if (code === STATUS_CODE.FAILURE) options.log.debug({ err: error }, "sftp request failed");
      sftp.status(requestId, code, message);
    });
  /** Runs a request on `handle` after the handle's earlier requests have been answered. */
  const inOrder = (handle: OpenHandle, requestId: number, work: () => Promise<void>) => {
    handle.queue = handle.queue.then(() => respond(requestId, work));
  };
  /** Starts `work` now; its reply (what it resolves to) is sent after the handle's earlier replies. */
  const replyInOrder = (handle: OpenHandle, requestId: number, work: () => Promise<() => void>) => {
    const started = work().then((reply) => ({ reply }), (error: NodeJS.ErrnoException) => ({ error }));
    handle.queue = handle.queue.then(() => respond(requestId, async () => {
      const outcome = await started;
      if ("error" in outcome) throw outcome.error;
      outcome.reply();
    }));
  };
  const ok = (requestId: number) => sftp.status(requestId, STATUS_CODE.OK);
  const badHandle = (requestId: number) => sftp.status(requestId, STATUS_CODE.FAILURE, "invalid handle");

  sftp.on("OPEN", (requestId, filename, flags, attrs) => respond(requestId, async () => {
    const file = await open(resolve(filename), openFlags(flags), attrs.mode ?? 0o666);
    sftp.handle(requestId, addHandle({ kind: "file", file, path: resolve(filename), queue: Promise.resolve() }));
  }));

  sftp.on("READ", (requestId, handleBuffer, offset, length) => {
    const handle = handleOf(handleBuffer);
    if (handle?.kind !== "file") return badHandle(requestId);
    replyInOrder(handle, requestId, async () => {
      const buffer = Buffer.allocUnsafe(Math.min(length, MAX_READ_BYTES));
      const bytesRead = readSync(handle.file.fd, buffer, 0, buffer.length, offset);
      return () => {
        if (bytesRead === 0) sftp.status(requestId, STATUS_CODE.EOF);
        else sftp.data(requestId, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      };
    });
  });

  sftp.on("WRITE", (requestId, handleBuffer, offset, data) => {
    const handle = handleOf(handleBuffer);
    if (handle?.kind !== "file") return badHandle(requestId);
    replyInOrder(handle, requestId, async () => {
      let written = 0;
      while (written < data.length) written += writeSync(handle.file.fd, data, written, data.length - written, offset + written);
      return () => ok(requestId);
    });
  });

  sftp.on("CLOSE", (requestId, handleBuffer) => {
    const id = handleBuffer.length === 4 ? handleBuffer.readUInt32BE(0) : -1;
    const handle = handles.get(id);
    if (!handle) return badHandle(requestId);
    handles.delete(id);
    inOrder(handle, requestId, async () => {
      if (handle.kind === "file") await handle.file.close();
      else await handle.dir.close().catch(() => {});
      ok(requestId);
    });
  });

  sftp.on("FSTAT", (requestId, handleBuffer) => {
    const handle = handleOf(handleBuffer);
    if (handle?.kind !== "file") return badHandle(requestId);
    inOrder(handle, requestId, async () => sftp.attrs(requestId, attributesOf(await handle.file.stat())));
  });

  sftp.on("FSETSTAT", (requestId, handleBuffer, attrs) => {
    const handle = handleOf(handleBuffer);
    if (handle?.kind !== "file") return badHandle(requestId);
    inOrder(handle, requestId, async () => {
      await applyAttributes(attrs, {
        truncate: (size) => handle.file.truncate(size),
        chown: (uid, gid) => handle.file.chown(uid, gid),
        chmod: (mode) => handle.file.chmod(mode),
        utimes: (atime, mtime) => handle.file.utimes(atime, mtime),
      });
      ok(requestId);
    });
  });

  sftp.on("SETSTAT", (requestId, path, attrs) => respond(requestId, async () => {
    const target = resolve(path);
    await applyAttributes(attrs, {
      truncate: (size) => truncate(target, size),
      chown: (uid, gid) => chown(target, uid, gid),
      chmod: (mode) => chmod(target, mode),
      utimes: (atime, mtime) => utimes(target, atime, mtime),
    });
    ok(requestId);
  }));

  sftp.on("STAT", (requestId, path) => respond(requestId, async () => sftp.attrs(requestId, attributesOf(await stat(resolve(path))))));
  sftp.on("LSTAT", (requestId, path) => respond(requestId, async () => sftp.attrs(requestId, attributesOf(await lstat(resolve(path))))));

  sftp.on("OPENDIR", (requestId, path) => respond(requestId, async () => {
    const dir = await opendir(resolve(path));
    sftp.handle(requestId, addHandle({ kind: "directory", dir, path: resolve(path), started: false, done: false, queue: Promise.resolve() }));
  }));

  sftp.on("READDIR", (requestId, handleBuffer) => {
    const handle = handleOf(handleBuffer);
    if (handle?.kind !== "directory") return badHandle(requestId);
    inOrder(handle, requestId, async () => {
      if (handle.done) return sftp.status(requestId, STATUS_CODE.EOF);
      const names: FileEntry[] = [];
      // `.` and `..` first, as sftp-server sends them; clients expect to skip them.
      if (!handle.started) {
        handle.started = true;
        for (const name of [".", ".."]) {
          const stats = await stat(posix.join(handle.path, name)).catch(() => null);
          if (stats) names.push(entryOf(name, stats));
        }
      }
      while (names.length < READDIR_BATCH) {
        const entry = await handle.dir.read();
        if (!entry) {
          handle.done = true;
          break;
        }
        const stats = await lstat(posix.join(handle.path, entry.name)).catch(() => null);
        if (stats) names.push(entryOf(entry.name, stats));
      }
      if (names.length === 0) sftp.status(requestId, STATUS_CODE.EOF);
      else sftp.name(requestId, names);
    });
  });

  sftp.on("REALPATH", (requestId, path) => {
    const resolved = resolve(path);
    sftp.name(requestId, [{ filename: resolved, longname: resolved, attrs: {} as Attributes }]);
  });

  sftp.on("READLINK", (requestId, path) => respond(requestId, async () => {
    const target = await readlink(resolve(path));
    sftp.name(requestId, [{ filename: target, longname: target, attrs: {} as Attributes }]);
  }));

  // OpenSSH sends SYMLINK's two paths in the opposite order from the draft (target first),
  // and every common client follows OpenSSH; ssh2 names them by the draft.
  sftp.on("SYMLINK", (requestId, first, second) => respond(requestId, async () => {
    await symlink(first, resolve(second));
    ok(requestId);
  }));

  sftp.on("MKDIR", (requestId, path, attrs) => respond(requestId, async () => {
    await mkdir(resolve(path), { mode: attrs.mode ?? 0o777 });
    ok(requestId);
  }));
  sftp.on("RMDIR", (requestId, path) => respond(requestId, async () => {
    await rmdir(resolve(path));
    ok(requestId);
  }));
  sftp.on("REMOVE", (requestId, path) => respond(requestId, async () => {
    await unlink(resolve(path));
    ok(requestId);
  }));
  sftp.on("RENAME", (requestId, from, to) => respond(requestId, async () => {
    await rename(resolve(from), resolve(to));
    ok(requestId);
  }));

  sftp.on("EXTENDED", (requestId) => sftp.status(requestId, STATUS_CODE.OP_UNSUPPORTED));

  // The client's EOF ends the subsystem, as sftp-server exits on EOF (otherwise `scp` waits
  // forever for the channel to close), with exit status 0: OpenSSH's scp fails a copy whose
  // channel closed without one.
  sftp.on("end", () => {
    sendExitStatus(sftp, 0);
    sftp.end();
  });
  sftp.on("close", () => {
    for (const handle of handles.values()) {
      if (handle.kind === "file") void handle.file.close().catch(() => {});
      else void handle.dir.close().catch(() => {});
    }
    handles.clear();
  });
}

/**
 * ssh2's SFTP stream (server side) has no `exit()` like its other channels, so this sends
 * the channel's `exit-status` request through the connection's protocol object.
 */
function sendExitStatus(sftp: SFTPWrapper, status: number): void {
  const channel = sftp as unknown as { _protocol?: { exitStatus(channelId: number, status: number): void }; outgoing?: { id: number; state: string } };
  if (channel._protocol && channel.outgoing?.state === "open") channel._protocol.exitStatus(channel.outgoing.id, status);
}

function openFlags(flags: number): number {
  let result = 0;
  const read = (flags & OPEN_MODE.READ) !== 0;
  const write = (flags & OPEN_MODE.WRITE) !== 0 || (flags & OPEN_MODE.APPEND) !== 0;
  result |= read && write ? constants.O_RDWR : write ? constants.O_WRONLY : constants.O_RDONLY;
  if (flags & OPEN_MODE.APPEND) result |= constants.O_APPEND;
  if (flags & OPEN_MODE.CREAT) result |= constants.O_CREAT;
  if (flags & OPEN_MODE.TRUNC) result |= constants.O_TRUNC;
  if (flags & OPEN_MODE.EXCL) result |= constants.O_EXCL;
  return result;
}

function attributesOf(stats: Stats): Attributes {
  return { mode: stats.mode, uid: stats.uid, gid: stats.gid, size: stats.size, atime: Math.floor(stats.atimeMs / 1000), mtime: Math.floor(stats.mtimeMs / 1000) };
}

function entryOf(name: string, stats: Stats): FileEntry {
  return { filename: name, longname: longnameOf(name, stats), attrs: attributesOf(stats) };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** An `ls -l` line; OpenSSH's `sftp ls -l` prints it as given. */
function longnameOf(name: string, stats: Stats): string {
  const type = stats.isDirectory() ? "d" : stats.isSymbolicLink() ? "l" : stats.isFIFO() ? "p" : stats.isSocket() ? "s" : stats.isCharacterDevice() ? "c" : stats.isBlockDevice() ? "b" : "-";
  const bits = "rwxrwxrwx".split("").map((letter, index) => (stats.mode & (0o400 >> index) ? letter : "-")).join("");
  const date = stats.mtime;
  const recent = Math.abs(Date.now() - date.getTime()) < 180 * 24 * 3600 * 1000;
  const when = `${MONTHS[date.getMonth()]} ${String(date.getDate()).padStart(2)} ${recent ? `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}` : ` ${date.getFullYear()}`}`;
  return `${type}${bits} ${String(stats.nlink).padStart(4)} ${String(stats.uid).padEnd(8)} ${String(stats.gid).padEnd(8)} ${String(stats.size).padStart(8)} ${when} ${name}`;
}

interface AttributeSetters {
  truncate(size: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
  chmod(mode: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
}

async function applyAttributes(attrs: InputAttributes, set: AttributeSetters): Promise<void> {
  if (attrs.size !== undefined) await set.truncate(attrs.size);
  if (attrs.uid !== undefined && attrs.gid !== undefined) await set.chown(attrs.uid, attrs.gid);
  if (attrs.mode !== undefined) await set.chmod((typeof attrs.mode === "string" ? Number.parseInt(attrs.mode, 8) : attrs.mode) & 0o7777);
  if (attrs.atime !== undefined && attrs.mtime !== undefined) await set.utimes(toSeconds(attrs.atime), toSeconds(attrs.mtime));
}

function toSeconds(time: number | Date): number {
  return time instanceof Date ? time.getTime() / 1000 : time;
}

function statusOf(error: NodeJS.ErrnoException): [number, string] {
  switch (error.code) {
    case "ENOENT":
      return [STATUS_CODE.NO_SUCH_FILE, "No such file"];
    case "EACCES":
    case "EPERM":
      return [STATUS_CODE.PERMISSION_DENIED, "Permission denied"];
    default:
      return [STATUS_CODE.FAILURE, error.message];
  }
}
