// A writer for the "newc" cpio format the kernel unpacks as its initramfs. Writing it
// ourselves lets the archive hold device nodes (/dev/console) and root-owned files
// without running as root or under fakeroot.

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

export class NewcWriter {
  private readonly chunks: Buffer[] = [];
  private readonly dirs = new Set<string>(['']);
  private ino = 1;

  /** Adds a directory, and any missing parents (the kernel does not create them). */
  dir(path: string, perm = 0o755): this {
    const p = clean(path);
    if (this.dirs.has(p)) return this;
    this.parents(p);
    this.dirs.add(p);
    return this.entry(p, S_IFDIR | perm, Buffer.alloc(0), 2);
  }

  file(path: string, data: Buffer | string, perm = 0o644): this {
    const p = clean(path);
    this.parents(p);
    return this.entry(p, S_IFREG | perm, typeof data === 'string' ? Buffer.from(data) : data);
  }

  symlink(path: string, target: string): this {
    const p = clean(path);
    this.parents(p);
    return this.entry(p, S_IFLNK | 0o777, Buffer.from(target));
  }

  charDevice(path: string, perm: number, major: number, minor: number): this {
    const p = clean(path);
    this.parents(p);
    return this.entry(p, S_IFCHR | perm, Buffer.alloc(0), 1, major, minor);
  }

  /** The finished archive, ending with the TRAILER!!! record. */
  finish(): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0), 1, 0, 0, 0);
    return Buffer.concat(this.chunks);
  }

  private parents(p: string): void {
    const cut = p.lastIndexOf('/');
    if (cut > 0) this.dir(p.slice(0, cut));
  }

  private entry(
    name: string,
    mode: number,
    data: Buffer,
    nlink = 1,
    rdevMajor = 0,
    rdevMinor = 0,
    ino = this.ino++,
  ): this {
    const nameBytes = Buffer.from(`${name}\0`);
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check;
    // uid/gid 0 (root) and mtime 0 keep the archive reproducible.
    const fields = [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, rdevMajor, rdevMinor, nameBytes.length, 0];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`;
    this.chunks.push(Buffer.from(header, 'latin1'), nameBytes, Buffer.alloc(pad4(110 + nameBytes.length)));
    this.chunks.push(data, Buffer.alloc(pad4(data.length)));
    return this;
  }
}

function clean(path: string): string {
  const p = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '' || p.split('/').some((s) => s === '..' || s === '.' || s === ''))
    throw new Error(`bad archive path: ${path}`);
  return p;
}
