// /bin/xenode-store in the default guest: the C program below, built static with
// the host's gcc when the guest is built (the guest has no compiler and no libc).
// C because the busybox sh client read a frame in tens of milliseconds under TCG
// (docs/guest-channel.md, bench:channel); the agent stays in sh (guest/agent.ts).
// The source is a string here, not a .c file, because the daemon's bundle (dist/)
// builds the guest too and carries no files beside itself.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runText } from './exec.ts';

/** Compiles the client in `dir` and returns the static binary. */
export async function buildStoreClient(dir: string, signal?: AbortSignal): Promise<Buffer> {
  const src = join(dir, 'xenode-store.c');
  const out = join(dir, 'xenode-store');
  await writeFile(src, STORE_CLIENT_SOURCE);
  // -static: the guest has busybox only; -s: no symbols in the initramfs.
  await runText('gcc', ['-static', '-Os', '-s', '-Wall', '-o', out, src], { signal, providedBy: 'gcc' });
  return readFile(out);
}

/** The C source (also part of the guest's cache key). */
export const STORE_CLIENT_SOURCE = `/*
 * xenode-store: this domain's part of the control store, from inside the guest,
 * over the virtio-serial port org.xenode.store (xenstored's wire protocol,
 * xs_wire.h; the daemon applies this domain's permissions and quotas). Relative
 * paths are under /local/domain/<domid>, as with Xen's xenstore-* tools.
 *
 *   xenode-store read PATH | write PATH VALUE | ls PATH | rm PATH | watch [-n COUNT] PATH
 *
 * C rather than busybox sh: a watch event read by the shell cost tens of ms of
 * interpreted byte reads under TCG; here it is two read() calls (bench:channel).
 * Built static by guest/build.ts with the host's gcc (the guest has no libc).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { XS_DIRECTORY = 1, XS_READ = 2, XS_WATCH = 4, XS_UNWATCH = 5, XS_WRITE = 11, XS_RM = 13, XS_WATCH_EVENT = 15,
       XS_ERROR = 16 };
/* xenstored's XENSTORE_PAYLOAD_MAX: a longer frame is not one of its own. */
#define PAYLOAD_MAX 4096
#define PORT_NAME "org.xenode.store"

struct hdr {
  uint32_t type, req_id, tx_id, len;
};

static int fd = -1;
static uint32_t req_id;
static struct hdr in;
static char payload[PAYLOAD_MAX + 1];

static void usage(void) {
  fputs("usage: xenode-store read PATH | write PATH VALUE | ls PATH | rm PATH | watch [-n COUNT] PATH\\n", stderr);
  exit(2);
}

static void die(const char *msg) {
  fprintf(stderr, "xenode-store: %s\\n", msg);
  exit(1);
}

static void nap_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* The /dev node of the port called PORT_NAME; also links every port under
 * /dev/virtio-ports/ as udev would (the guest has no udev). */
static int find_port(char *dev, size_t size) {
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  int found = 0;
  if (!d) return 0;
  mkdir("/dev/virtio-ports", 0755);
  while ((e = readdir(d))) {
    char path[300], name[128], link[300], target[300];
    if (strncmp(e->d_name, "vport", 5)) continue;
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(name, sizeof name, f)) name[0] = 0;
    fclose(f);
    name[strcspn(name, "\\n")] = 0;
    if (!name[0] || strchr(name, '/')) continue;
    snprintf(link, sizeof link, "/dev/virtio-ports/%s", name);
    snprintf(target, sizeof target, "../%s", e->d_name);
    if (symlink(target, link) && errno != EEXIST) continue;
    if (!strcmp(name, PORT_NAME)) {
      snprintf(dev, size, "/dev/%s", e->d_name);
      found = 1;
    }
  }
  closedir(d);
  return found;
}

static int full_read(void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1; /* end of stream: the host side closed */
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* One frame into in and payload (NUL-terminated as well). */
static int recv_frame(void) {
  if (full_read(&in, sizeof in)) return -1;
  if (in.len > PAYLOAD_MAX) die("a frame longer than xenstored's limit came in");
  if (in.len && full_read(payload, in.len)) return -1;
  payload[in.len] = 0;
  return 0;
}

/* One frame, one write (one virtio buffer): header, a, NUL, b[, NUL]. */
static void send_frame(uint32_t type, const char *a, const char *b, int nul_after_b) {
  size_t la = strlen(a), lb = b ? strlen(b) : 0;
  size_t len = la + 1 + (b ? lb + (nul_after_b ? 1 : 0) : 0);
  if (len > PAYLOAD_MAX) die("the request is longer than xenstored's limit (4096 bytes)");
  char buf[sizeof(struct hdr) + PAYLOAD_MAX];
  struct hdr h = {type, req_id, 0, (uint32_t)len};
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, a, la + 1);
  if (b) {
    memcpy(buf + sizeof h + la + 1, b, lb);
    if (nul_after_b) buf[sizeof h + len - 1] = 0;
  }
  const char *p = buf;
  size_t n = sizeof h + len;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("cannot write to the store channel");
    p += w;
    n -= (size_t)w;
  }
}

/* A request and its reply; skips what an earlier user of the port left behind
 * (its watch events, its replies). A session the daemon dropped (it restarted,
 * or an earlier user sent garbage) is reopened by the daemon: send again. */
static void call(uint32_t type, const char *a, const char *b, int nul_after_b) {
  for (int attempt = 0; attempt < 5; attempt++) {
    send_frame(type, a, b, nul_after_b);
    while (recv_frame() == 0) {
      if (in.req_id == req_id && in.type != XS_WATCH_EVENT) {
        if (in.type == XS_ERROR) die(payload);
        return;
      }
    }
  }
  die("the store channel keeps closing");
}

/* The payload's NUL-separated strings, one a line. */
static void print_list(void) {
  for (uint32_t i = 0; i < in.len; i++)
    if (payload[i] == 0) payload[i] = '\\n';
  if (in.len && payload[in.len - 1] != '\\n') payload[in.len++] = '\\n';
  fwrite(payload, 1, in.len, stdout);
}

int main(int argc, char **argv) {
  char dev[300];
  if (argc < 3) usage();
  if (!find_port(dev, sizeof dev)) die("no org.xenode.store port (no store channel)");
  /* One process at a time may hold a virtio-serial port: wait up to 5 s for another user. */
  for (int i = 0; (fd = open(dev, O_RDWR | O_CLOEXEC)) < 0; i++) {
    if (errno != EBUSY) die("cannot open the org.xenode.store port");
    if (i >= 50) die("org.xenode.store is busy (another xenode-store holds it)");
    nap_ms(100);
  }
  req_id = (uint32_t)getpid();
  const char *cmd = argv[1];
  if (!strcmp(cmd, "read") && argc == 3) {
    call(XS_READ, argv[2], NULL, 0);
    fwrite(payload, 1, in.len, stdout);
    putchar('\\n');
  } else if (!strcmp(cmd, "write") && argc == 4) {
    call(XS_WRITE, argv[2], argv[3], 0);
  } else if (!strcmp(cmd, "ls") && argc == 3) {
    call(XS_DIRECTORY, argv[2], NULL, 0);
    print_list();
  } else if (!strcmp(cmd, "rm") && argc == 3) {
    call(XS_RM, argv[2], NULL, 0);
  } else if (!strcmp(cmd, "watch")) {
    long count = 0, seen = 0;
    int a = 2;
    if (argc > 3 && !strcmp(argv[2], "-n")) {
      char *end;
      count = strtol(argv[3], &end, 10);
      if (*end || count < 0) usage();
      a = 4;
    }
    if (argc != a + 1) usage();
    const char *path = argv[a];
    char token[64];
    snprintf(token, sizeof token, "xenode-store-%u", (unsigned)req_id);
    call(XS_WATCH, path, token, 1);
    /* Events: path NUL token NUL. Print the path at once: a reader may be waiting on it. */
    while (recv_frame() == 0) {
      if (in.type != XS_WATCH_EVENT) continue;
      size_t pl = strnlen(payload, in.len);
      if (pl + 1 >= in.len || strcmp(payload + pl + 1, token)) continue;
      payload[pl] = '\\n';
      if (write(1, payload, pl + 1) < 0) return 1;
      if (count > 0 && ++seen >= count) {
        send_frame(XS_UNWATCH, path, token, 1);
        return 0;
      }
    }
    die("the store channel closed");
  } else {
    usage();
  }
  return 0;
}
`;
