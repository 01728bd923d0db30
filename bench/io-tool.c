/*
 * xnio: block-device throughput and IOPS measured inside a guest, for bench:io.
 * The default guest has no fio; busybox dd cannot do random reads without an
 * exec per request. Built on the host with `gcc -static -O2` and handed to the
 * guest on a disk image of its own (bench/io-disk.ts).
 *
 *   xnio seqread  DEV MIB        1 MiB O_DIRECT reads from offset 0
 *   xnio seqwrite DEV MIB        1 MiB O_DIRECT writes from offset 0, then fdatasync
 *   xnio randread DEV SECONDS J  4 KiB O_DIRECT reads at random offsets, J processes
 *   xnio randwrite DEV SECONDS J 4 KiB O_DIRECT writes at random offsets, J processes
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int randio(int fd, uint64_t size, double seconds, int jobs, void *buf, int wr) {
  int p[2];
  if (pipe(p) != 0) return perror("pipe"), 1;
  uint64_t blocks = size / 4096;
  double t0 = now();
  for (int j = 0; j < jobs; j++) {
    if (fork() != 0) continue;
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(getpid() + 1), n = 0;
    while (now() - t0 < seconds) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
      off_t at = (off_t)(x % blocks) * 4096;
      if ((wr ? pwrite(fd, buf, 4096, at) : pread(fd, buf, 4096, at)) != 4096) _exit(1);
      n++;
    }
    if (write(p[1], &n, sizeof n) != sizeof n) _exit(1);
    _exit(0);
  }
  uint64_t total = 0, n;
  for (int j = 0; j < jobs; j++)
    if (read(p[0], &n, sizeof n) == sizeof n) total += n;
  int failed = 0, st;
  while (wait(&st) > 0) failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
  double dt = now() - t0;
  const char *what = wr ? "randwrite" : "randread";
  if (failed) return fprintf(stderr, "%s: a job failed\n", what), 1;
  printf("%s iops=%.0f ops=%llu seconds=%.3f jobs=%d\n", what, total / dt, (unsigned long long)total, dt, jobs);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: xnio seqread|seqwrite DEV MIB | randread|randwrite DEV SECONDS [JOBS]\n");
    return 2;
  }
  const char *mode = argv[1], *dev = argv[2];
  int wr = strcmp(mode, "seqwrite") == 0 || strcmp(mode, "randwrite") == 0;
  int fd = open(dev, (wr ? O_WRONLY : O_RDONLY) | O_DIRECT);
  if (fd < 0) return perror(dev), 1;
  uint64_t size = 0;
  /* A block device says its size; a plain file (a quick test on the host) has it as its end. */
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) size = (uint64_t)lseek(fd, 0, SEEK_END);
  void *buf;
  if (posix_memalign(&buf, 4096, MIB) != 0) return 1;
  memset(buf, 0xa5, MIB);
  if (strncmp(mode, "rand", 4) == 0) return randio(fd, size, atof(argv[3]), argc > 4 ? atoi(argv[4]) : 1, buf, wr);
  long mib = atol(argv[3]);
  if ((uint64_t)mib * MIB > size) return fprintf(stderr, "%s: device has only %llu bytes\n", mode, (unsigned long long)size), 1;
  double t0 = now();
  for (long i = 0; i < mib; i++) {
    ssize_t r = wr ? pwrite(fd, buf, MIB, (off_t)i * MIB) : pread(fd, buf, MIB, (off_t)i * MIB);
    if (r != MIB) return perror(mode), 1;
  }
  if (wr && fdatasync(fd) != 0) return perror("fdatasync"), 1;
  double dt = now() - t0;
  printf("%s mbps=%.1f mib=%ld seconds=%.3f\n", mode, mib / dt, mib, dt);
  return 0;
}
