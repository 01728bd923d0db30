// /sbin/xenode-reseed: a 170-byte static x86-64 program that makes the guest
// kernel reseed its random number generator now (ioctl RNDRESEEDCRNG on
// /dev/urandom). Two domains started from one template resume with the same
// CRNG state, and Linux reseeds only every minute or so (the Debian cloud
// kernel has no vmgenid driver to do it at once); busybox has no way to issue
// the ioctl and the guest has no compiler, so the agent runs this, after mixing
// the domain's own uuid into the pool, when it finds itself in a new domain.
//
// The code, by hand (exit status: 0, or the errno of the call that failed):
//   mov eax,2; lea rdi,[path]; mov esi,1; syscall        open("/dev/urandom", O_WRONLY)
//   test eax,eax; js out
//   mov edi,eax; mov eax,16; mov esi,0x5207; xor edx,edx; syscall   ioctl(fd, RNDRESEEDCRNG)
//   out: mov edi,eax; neg edi; mov eax,60; syscall        exit(-ret)

const BASE = 0x400000;
const HEADERS = 64 + 56;

// biome-ignore format: one instruction a line
const CODE = Buffer.from([
  0xb8, 0x02, 0x00, 0x00, 0x00, // mov eax, 2 (open)
  0x48, 0x8d, 0x3d, 0x26, 0x00, 0x00, 0x00, // lea rdi, [rip + 38] -> path
  0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi, 1 (O_WRONLY)
  0x0f, 0x05, // syscall
  0x85, 0xc0, // test eax, eax
  0x78, 0x10, // js out (+16)
  0x89, 0xc7, // mov edi, eax
  0xb8, 0x10, 0x00, 0x00, 0x00, // mov eax, 16 (ioctl)
  0xbe, 0x07, 0x52, 0x00, 0x00, // mov esi, 0x5207 (RNDRESEEDCRNG)
  0x31, 0xd2, // xor edx, edx
  0x0f, 0x05, // syscall
  0x89, 0xc7, // out: mov edi, eax
  0xf7, 0xdf, // neg edi
  0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
  0x0f, 0x05, // syscall
  ...Buffer.from('/dev/urandom\0', 'latin1'),
]);

/** The program as an ELF64 executable: one PT_LOAD segment, entry right after the headers. */
export function reseedProgram(): Buffer {
  const size = HEADERS + CODE.length;
  const b = Buffer.alloc(size);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(b, 0); // ELF, 64-bit, little-endian, SysV
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(0x3e, 18); // x86-64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BigInt(BASE + HEADERS), 24); // entry
  b.writeBigUInt64LE(64n, 32); // program headers right after this one
  b.writeUInt16LE(64, 52);
  b.writeUInt16LE(56, 54);
  b.writeUInt16LE(1, 56);
  // PT_LOAD, R+X, the whole file at BASE.
  b.writeUInt32LE(1, 64);
  b.writeUInt32LE(5, 68);
  b.writeBigUInt64LE(0n, 72);
  b.writeBigUInt64LE(BigInt(BASE), 80);
  b.writeBigUInt64LE(BigInt(BASE), 88);
  b.writeBigUInt64LE(BigInt(size), 96);
  b.writeBigUInt64LE(BigInt(size), 104);
  b.writeBigUInt64LE(0x1000n, 112);
  CODE.copy(b, HEADERS);
  return b;
}
