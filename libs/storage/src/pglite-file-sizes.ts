import type { PGlite } from '@electric-sql/pglite';

/** Where PGlite mounts a data folder given by path (its Node filesystem, NODEFS). */
const PGDATA = '/pglite/data';

const SIZE = Symbol('tessera.fileSize');
const PATCHED = Symbol('tessera.fileSizesPatched');

interface FsNode {
  mode: number;
  [SIZE]?: number;
}
interface FsStream {
  node: FsNode;
}
type StreamOps = {
  llseek(stream: FsStream, offset: number, whence: number): number;
  write(stream: FsStream, buffer: unknown, offset: number, length: number, position: number, canOwn?: boolean): number;
  setattr(stream: FsStream, attr: { size?: number }): void;
  [PATCHED]?: true;
};
type NodeOps = { setattr(node: FsNode, attr: { size?: number }): void };
interface EmscriptenFs {
  lookupPath(path: string): { node: { stream_ops?: StreamOps; node_ops?: NodeOps } };
  isFile(mode: number): boolean;
}

const SEEK_END = 2;

/**
 * Keeps the size of each data file PGlite has open, instead of asking the OS at every
 * lseek(SEEK_END).
 *
 * Why: PostgreSQL learns a relation's length with lseek(fd, 0, SEEK_END), for every relation
 * and index of every statement it plans (we plan each run: plan_cache_mode=force_custom_plan),
 * and PGlite's Node filesystem answers each one with fs.fstatSync, a system call and a Stats
 * object: 6.6% of the embedded server's CPU in bench/client's sends (CPU profile).
 *
 * Sound because every size change of a file in the data folder goes through this filesystem's
 * write (which can only grow it) and setattr with a size (ftruncate and truncate, also what an
 * O_TRUNC open does), both kept here, and PGlite owns its data folder: no other process writes
 * it while it runs. A file's size is learnt from the OS the first time it is asked.
 *
 * Returns false, changing nothing, when PGlite's filesystem is not the one this knows (an
 * in-memory database, another PGlite version's internals): then every lseek asks the OS as before.
 */
export function cacheDataFileSizes(pglite: PGlite): boolean {
  const fs = (pglite as unknown as { Module?: { FS?: EmscriptenFs } }).Module?.FS;
  let root: { stream_ops?: StreamOps; node_ops?: NodeOps };
  try {
    if (!fs) return false;
    root = fs.lookupPath(PGDATA).node;
  } catch {
    return false;
  }
  const stream = root.stream_ops;
  const node = root.node_ops;
  if (!stream || !node || typeof stream.llseek !== 'function' || typeof stream.write !== 'function' || typeof stream.setattr !== 'function' || typeof node.setattr !== 'function') return false;
  if (stream[PATCHED]) return true; // the ops object is the filesystem's, shared by every database in this process
  const { llseek, write, setattr: streamSetattr } = stream;
  const nodeSetattr = node.setattr;

  stream.llseek = function (this: unknown, s, offset, whence) {
    if (whence !== SEEK_END || !fs.isFile(s.node.mode)) return llseek.call(this, s, offset, whence);
    const size = (s.node[SIZE] ??= llseek.call(this, s, 0, SEEK_END));
    // A negative position is an error: the original raises it.
    return size + offset < 0 ? llseek.call(this, s, offset, whence) : size + offset;
  };
  stream.write = function (this: unknown, s, buffer, offset, length, position, canOwn) {
    const written = write.call(this, s, buffer, offset, length, position, canOwn);
    const known = s.node[SIZE];
    if (known !== undefined && position + written > known) s.node[SIZE] = position + written;
    return written;
  };
  stream.setattr = function (this: unknown, s, attr) {
    if (attr.size !== undefined) delete s.node[SIZE];
    return streamSetattr.call(this, s, attr);
  };
  node.setattr = function (this: unknown, n, attr) {
    if (attr.size !== undefined) delete n[SIZE];
    return nodeSetattr.call(this, n, attr);
  };
  stream[PATCHED] = true;
  return true;
}
