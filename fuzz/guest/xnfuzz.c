/*
 * xnfuzz: the fuzz agent run inside a test guest by `npm run fuzz:guest`
 * (fuzz/in-guest.ts). For a set time it throws at the host side everything a
 * hostile guest can: raw Ethernet frames on its vif (random bytes, and valid
 * Ethernet/ARP/IPv4/IPv6/VLAN frames with fields and bytes mutated, from its own
 * and from forged MACs), disk requests to a disk served by Xenode's vhost-user
 * backend (odd sizes and offsets, past the end, discard and write-zeroes, flush),
 * and frames on its store channel (random bytes, and xenstored wire messages of
 * every type with random ids, lengths that lie, other domains' paths, huge
 * paths). It prints a line of counts every 10 s and one at the end.
 *
 *   xnfuzz SECONDS SEED IFNAME DISKDEV [DOMID]
 *
 * Static, no dependencies but libc: the guest has busybox only. It is copied
 * into the guest from a raw disk (the harness's tools image).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t rs;
static uint64_t rnd(void) {
  /* xorshift64*: reproducible from the seed the harness prints. */
  rs ^= rs >> 12;
  rs ^= rs << 25;
  rs ^= rs >> 27;
  return rs * 2685821657736338717ULL;
}
static uint32_t below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }
static void fill(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

struct counts {
  unsigned long net, net_err, disk, disk_err, store, store_err, replies;
} c;

/* ---- network ------------------------------------------------------------ */

static int net_fd = -1, ifindex;
static uint8_t my_mac[6];

static void put16(uint8_t *p, unsigned v) { p[0] = v >> 8; p[1] = v & 0xff; }

static size_t ipv4(uint8_t *f, uint8_t proto, size_t payload) {
  uint8_t *ip = f + 14;
  put16(f + 12, 0x0800);
  ip[0] = below(8) ? 0x45 : (uint8_t)rnd(); /* sometimes a bad version/IHL */
  ip[1] = 0;
  put16(ip + 2, below(8) ? (unsigned)(20 + payload) : below(65536));
  put16(ip + 4, below(65536));
  put16(ip + 6, below(4) ? 0x4000 : below(65536)); /* fragments too */
  ip[8] = 64;
  ip[9] = proto;
  ip[10] = ip[11] = 0;
  /* 10.x sources: its own, a neighbour's, anything. */
  ip[12] = 10; ip[13] = 0; ip[14] = below(3); ip[15] = below(8) ? 2 + below(6) : (uint8_t)rnd();
  if (!below(4)) fill(ip + 12, 4);
  ip[16] = 10; ip[17] = 0; ip[18] = below(3); ip[19] = (uint8_t)rnd();
  if (!below(4)) fill(ip + 16, 4);
  return 34;
}

static size_t make_frame(uint8_t *f, size_t max) {
  size_t n;
  memset(f, 0, max);
  if (below(8)) memset(f, 0xff, 6); else fill(f, 6);
  if (below(5)) memcpy(f + 6, my_mac, 6); else fill(f + 6, 6);
  switch (below(8)) {
  case 0: /* random bytes after the MACs */
    n = 14 + below(max - 14);
    fill(f + 12, n - 12);
    return n;
  case 1: { /* ARP with any operation and addresses */
    put16(f + 12, 0x0806);
    uint8_t *a = f + 14;
    put16(a, 1); put16(a + 2, 0x0800); a[4] = 6; a[5] = 4; put16(a + 6, 1 + below(3));
    memcpy(a + 8, below(2) ? my_mac : f + 6, 6);
    a[14] = 10; a[15] = 0; a[16] = below(3); a[17] = (uint8_t)rnd();
    fill(a + 18, 6);
    a[24] = 10; a[25] = 0; a[26] = below(3); a[27] = (uint8_t)rnd();
    n = 42;
    break;
  }
  case 2: { /* TCP with any flags and ports (SYN floods, scans, RSTs) */
    size_t h = ipv4(f, 6, 20);
    uint8_t *t = f + h;
    put16(t, below(65536)); put16(t + 2, below(4) ? 25 : below(65536));
    fill(t + 4, 8);
    t[12] = 0x50; t[13] = (uint8_t)rnd();
    n = h + 20 + below(200);
    break;
  }
  case 3: { /* UDP */
    size_t h = ipv4(f, 17, 8);
    uint8_t *u = f + h;
    put16(u, below(65536)); put16(u + 2, below(65536)); put16(u + 4, below(2000));
    n = h + 8 + below(600);
    fill(u + 8, n - h - 8);
    break;
  }
  case 4: { /* IPv6: ICMPv6 (ND) or anything, from any source */
    put16(f + 12, 0x86dd);
    uint8_t *ip = f + 14;
    ip[0] = 0x60;
    put16(ip + 4, below(400));
    ip[6] = below(2) ? 58 : (uint8_t)rnd();
    ip[7] = 255;
    fill(ip + 8, 32);
    if (below(2)) { ip[8] = 0xfe; ip[9] = 0x80; }
    uint8_t *icmp = ip + 40;
    icmp[0] = 133 + below(5); /* RS, RA, NS, NA, redirect */
    fill(icmp + 1, 40);
    n = 14 + 40 + 8 + below(100);
    break;
  }
  case 5: { /* 802.1Q / QinQ tags around anything */
    put16(f + 12, below(2) ? 0x8100 : 0x88a8);
    put16(f + 14, below(4096));
    put16(f + 16, below(2) ? 0x0800 : 0x8100);
    n = 18 + below(200);
    fill(f + 18, n - 18);
    break;
  }
  default: { /* ICMP echo, a well formed flow to mutate */
    size_t h = ipv4(f, 1, 8);
    f[h] = 8;
    n = h + 8 + below(100);
    break;
  }
  }
  if (n > max) n = max;
  /* Then some bytes flipped, or the frame cut short. */
  for (unsigned k = below(4); k > 0; k--) f[below(n)] ^= (uint8_t)(1 + below(255));
  if (!below(8)) n = 14 + below(n - 13);
  return n;
}

static void net_op(void) {
  uint8_t f[1514];
  size_t n = make_frame(f, sizeof f);
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
  memcpy(to.sll_addr, f, 6);
  c.net++;
  if (sendto(net_fd, f, n, 0, (struct sockaddr *)&to, sizeof to) < 0) c.net_err++;
}

/* ---- disk --------------------------------------------------------------- */

static int disk_fd = -1, disk_buf_fd = -1;
static uint64_t disk_size;
static uint8_t *dbuf;

static void disk_op(void) {
  uint64_t span = disk_size + (1 << 20); /* past the end too */
  uint64_t off = (rnd() % span) & ~511ULL;
  size_t len = 512 * (1 + below(512));
  ssize_t r = 0;
  int fd = below(4) ? disk_fd : disk_buf_fd;
  if (fd == disk_buf_fd && below(2)) { off += below(512); len = 1 + below(70000); } /* buffered: any size */
  c.disk++;
  switch (below(7)) {
  case 0: case 1: r = pread(fd, dbuf, len, off); break;
  case 2: case 3: fill(dbuf, 64); r = pwrite(fd, dbuf, len, off); break;
  case 4: { uint64_t range[2] = {off, len * below(64)}; r = ioctl(disk_fd, BLKDISCARD, range); break; }
  case 5: { uint64_t range[2] = {off, len}; r = ioctl(disk_fd, BLKZEROOUT, range); break; }
  default: r = below(2) ? fdatasync(fd) : fsync(fd); break;
  }
  if (r < 0) c.disk_err++;
}

/* ---- store channel ------------------------------------------------------ */

static int store_fd = -1;
static unsigned domid_guess;

static int find_port(const char *want, char *dev, size_t n) {
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  if (!d) return 0;
  while ((e = readdir(d))) {
    char p[300], name[128] = "";
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
    fclose(f);
    if (!strcmp(name, want)) { snprintf(dev, n, "/dev/%s", e->d_name); closedir(d); return 1; }
  }
  closedir(d);
  return 0;
}

static const char *const PATHS[] = {
  "name", "data/x", "control/shutdown", "memory/target", "device", "../1/name", "/local/domain/0",
  "/local/domain/0/name", "/tool", "/vm", "@introduceDomain", "@releaseDomain", "/", "", "data/../../0",
  "/local/domain/%u/data/y", "/local/domain/%u",
};

static size_t store_payload(uint8_t *p, size_t max) {
  size_t n = 0;
  switch (below(4)) {
  case 0: n = below(max); fill(p, n); return n;
  case 1: n = max > 4200 ? 4100 + below(100) : max; memset(p, 'a' + below(26), n); return n; /* oversized */
  default: {
    const char *t = PATHS[below(sizeof PATHS / sizeof *PATHS)];
    n = (size_t)snprintf((char *)p, max, t, below(4) ? domid_guess : (unsigned)rnd()) + 1;
    if (below(2)) { /* a second argument: value, token or perms */
      size_t m = below(64);
      fill(p + n, m);
      n += m;
      if (below(2)) p[n++] = 0;
    }
    return n;
  }
  }
}

static void store_op(void) {
  uint8_t m[16 + 5000];
  uint32_t h[4];
  size_t n = store_payload(m + 16, sizeof m - 16);
  h[0] = below(8) ? below(32) : (uint32_t)rnd();
  h[1] = (uint32_t)rnd();
  h[2] = below(4) ? 0 : below(4) ? below(16) : (uint32_t)rnd();
  h[3] = below(8) ? (uint32_t)n : below(2) ? (uint32_t)rnd() : (uint32_t)n + below(16); /* lengths that lie */
  memcpy(m, h, 16);
  c.store++;
  if (!below(16)) { n = below(40); fill(m, n + 16); } /* no header at all */
  if (write(store_fd, m, 16 + n) < 0) c.store_err++;
  uint8_t r[8192];
  ssize_t k;
  while ((k = read(store_fd, r, sizeof r)) > 0) c.replies += (unsigned long)k;
}

/* ---- main --------------------------------------------------------------- */

static void report(const char *what, double t0) {
  printf("xnfuzz: %s t=%.0f net=%lu/%lu disk=%lu/%lu store=%lu/%lu reply_bytes=%lu\n", what, now() - t0, c.net,
         c.net_err, c.disk, c.disk_err, c.store, c.store_err, c.replies);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: xnfuzz SECONDS SEED IFNAME DISKDEV [DOMID]\n");
    return 2;
  }
  double secs = atof(argv[1]);
  rs = strtoull(argv[2], 0, 10) * 0x9e3779b97f4a7c15ULL + 1;
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[3]);
  net_fd = socket(AF_PACKET, SOCK_RAW, htons(0x0003));
  if (net_fd >= 0 && ioctl(net_fd, SIOCGIFINDEX, &ifr) == 0) {
    ifindex = ifr.ifr_ifindex;
    if (ioctl(net_fd, SIOCGIFHWADDR, &ifr) == 0) memcpy(my_mac, ifr.ifr_hwaddr.sa_data, 6);
    /* Only sends: a raw socket that is never read would queue every frame it sees. */
    shutdown(net_fd, SHUT_RD);
  } else {
    perror("xnfuzz: raw socket");
    net_fd = -1;
  }
  disk_fd = open(argv[4], O_RDWR | O_DIRECT);
  disk_buf_fd = open(argv[4], O_RDWR);
  if (disk_fd < 0 || disk_buf_fd < 0 || ioctl(disk_fd, BLKGETSIZE64, &disk_size) < 0) {
    perror("xnfuzz: disk");
    disk_fd = -1;
  }
  if (posix_memalign((void **)&dbuf, 4096, 512 * 512)) return 1;
  char dev[300];
  if (find_port("org.xenode.store", dev, sizeof dev)) store_fd = open(dev, O_RDWR | O_NONBLOCK);
  if (store_fd < 0) fprintf(stderr, "xnfuzz: no store channel\n");
  domid_guess = argc > 5 ? (unsigned)atoi(argv[5]) : 1 + below(8);
  report("start", now());
  double t0 = now(), last = t0;
  while (now() - t0 < secs) {
    unsigned op = below(10);
    if (op < 4 && net_fd >= 0) net_op();
    else if (op < 7 && disk_fd >= 0) disk_op();
    else if (store_fd >= 0) store_op();
    if (now() - last >= 10) {
      report("progress", t0);
      last = now();
    }
  }
  report("done", t0);
  return 0;
}
