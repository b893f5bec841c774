/*
 * loadgen: the TCP load generator of the twisted-sock benchmarks.
 *
 * One thread, non-blocking sockets and epoll, so that one core of client
 * outruns one core of Python server. Compiled by the runner (bench/build.py)
 * with gcc -O2; loopback (127.0.0.0/8) destinations only.
 *
 *   loadgen connect -p PORT [-P NPORTS] [-c INFLIGHT] [-d SECS] [-w WARMUP]
 *       Open connections, never send a byte, wait for the server to end
 *       each one and classify how: "eof" (FIN: accepted and closed),
 *       "reset" (RST: refused), "refused" (ECONNREFUSED: nothing
 *       listening), "timeout" (no outcome in 5 s) or "other". Keeps INFLIGHT
 *       connections in flight; spreads them over ports PORT..PORT+NPORTS-1.
 *   loadgen echo -p PORT [-c CONNS] [-m BYTES] [-d SECS] [-w WARMUP]
 *       CONNS connections, each sending a BYTES message and waiting for all
 *       of it to come back before sending the next (request/response).
 *   loadgen idle -p PORT -n CONNS [-c INFLIGHT] [-t HOLD]
 *       Open CONNS connections and hold them, silent; print a "ready" line
 *       when all are connected, then hold until stdin reaches EOF, SIGTERM,
 *       or HOLD seconds (default 60). Closes with RST (no TIME_WAIT).
 *
 *   loadgen udp-echo -p PORT [-c OUTSTANDING] [-m BYTES] [-d SECS] [-w WARMUP]
 *       UDP: OUTSTANDING datagrams of BYTES (>= 8) in flight from one
 *       socket; each echo that comes back (checked: length, slot, sequence
 *       number, content) sends the slot's next datagram. A datagram without
 *       an echo for 1 s counts as lost and its slot sends again.
 *   loadgen udp-flood -p PORT [-m BYTES] [-d SECS] [-w WARMUP] [-s SRC]
 *       UDP: send BYTES datagrams as fast as possible (sendmmsg, 64 at a
 *       time) for the duration; counts what the kernel accepted to send.
 *
 *   loadgen serve -k accept|reset|echo|http|udp-echo [-p PORT] [-t MAXSECS]
 *       A minimal C server for calibration: how fast this generator (or
 *       wrk) can go when the server costs almost nothing.
 *
 *   Common: -h ADDR (default 127.0.0.1), -s SRC[,SRC...] source addresses
 *   (bound with IP_BIND_ADDRESS_NO_PORT, used in turn).
 *
 * Prints one JSON object on stdout at the end (and, for idle, one "ready"
 * object before). Counts only what completes after the warm-up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_SOURCES 64
#define CONNECT_TIMEOUT 5.0

static struct in_addr dest_addr;
static int base_port = 0, nports = 1;
static int inflight = 64;
static double duration = 5.0, warmup = 0.5, hold = 60.0;
static int msg_size = 4096;
static int nconns = 50;
static struct in_addr sources[MAX_SOURCES];
static int nsources = 0;
static unsigned long next_source = 0, next_port = 0;
static volatile sig_atomic_t stop_flag = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void on_term(int sig) { (void)sig; stop_flag = 1; }

static void usage(void);

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = 65536;
        if (rl.rlim_max < want) {
            struct rlimit r2 = {want, want};
            if (setrlimit(RLIMIT_NOFILE, &r2) == 0) return;
        }
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void cpu_times(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int is_loopback(struct in_addr a) { return (ntohl(a.s_addr) >> 24) == 127; }

/* Start a non-blocking connect; returns the fd (connect in progress or done). */
static int start_connect(int *port_out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (nsources) {
        struct sockaddr_in src = {0};
        int one = 1;
        src.sin_family = AF_INET;
        src.sin_addr = sources[next_source++ % nsources];
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_addr = dest_addr;
    int port = base_port + (int)(next_port++ % (unsigned long)nports);
    dst.sin_port = htons((uint16_t)port);
    if (port_out) *port_out = port;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ */
/* connect mode                                                        */

struct cslot {
    int fd;
    double started;
};

static int run_connect(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct cslot *slots = calloc((size_t)inflight, sizeof *slots);
    struct epoll_event *events = calloc((size_t)inflight, sizeof *events);
    unsigned long eof = 0, reset = 0, refused = 0, timeout = 0, other = 0, data = 0;
    unsigned long connect_fail = 0, slow = 0, started = 0, abandoned = 0, total = 0;
    int last_errno = 0;
    double max_latency = 0, sum_latency = 0;
    char buf[4096];

    double t0 = now();
    double t_measure = t0 + warmup, t_end = t_measure + duration;
    double u0 = 0, s0 = 0, next_sweep = t0 + 0.1;
    int measuring = 0;

    for (int i = 0; i < inflight; i++) slots[i].fd = -1;

    for (;;) {
        double t = now();
        if (!measuring && t >= t_measure) {
            measuring = 1;
            cpu_times(&u0, &s0);
            eof = reset = refused = timeout = other = data = connect_fail = slow = 0;
            max_latency = sum_latency = 0;
            started = 0;
        }
        if (t >= t_end || stop_flag) break;
        /* fill free slots */
        for (int i = 0; i < inflight; i++) {
            if (slots[i].fd >= 0) continue;
            int fd = start_connect(NULL);
            if (fd < 0) {
                connect_fail++;
                last_errno = errno;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
            slots[i].fd = fd;
            slots[i].started = now();
            started++;
        }
        int n = epoll_wait(ep, events, inflight, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        t = now();
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            int fd = slots[i].fd;
            if (fd < 0) continue;
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            int outcome; /* 0 eof, 1 reset, 2 refused, 3 other, -1 keep */
            if (r == 0) outcome = 0;
            else if (r > 0) { data += (unsigned long)r; outcome = -1; }
            else if (errno == EAGAIN || errno == EINTR) outcome = -1;
            else if (errno == ECONNRESET) outcome = 1;
            else if (errno == ECONNREFUSED) outcome = 2;
            else { outcome = 3; last_errno = errno; }
            if (outcome < 0) continue;
            double lat = t - slots[i].started;
            total++;
            if (outcome == 0) eof++;
            else if (outcome == 1) reset++;
            else if (outcome == 2) refused++;
            else other++;
            if (lat > max_latency) max_latency = lat;
            sum_latency += lat;
            if (lat > 1.0) slow++;
            close(fd); /* epoll forgets a closed fd */
            slots[i].fd = -1;
        }
        if (t >= next_sweep) {
            next_sweep = t + 0.1;
            for (int i = 0; i < inflight; i++) {
                if (slots[i].fd >= 0 && t - slots[i].started > CONNECT_TIMEOUT) {
                    timeout++;
                    close(slots[i].fd);
                    slots[i].fd = -1;
                }
            }
        }
    }
    double t_stop = now();
    double u1, s1;
    cpu_times(&u1, &s1);
    for (int i = 0; i < inflight; i++) {
        if (slots[i].fd >= 0) {
            struct linger lg = {1, 0};
            setsockopt(slots[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(slots[i].fd);
            abandoned++;
        }
    }
    double elapsed = measuring ? t_stop - t_measure : 0;
    unsigned long done = eof + reset + refused + other;
    printf("{\"mode\": \"connect\", \"elapsed\": %.6f, \"completed\": %lu, \"eof\": %lu, "
           "\"reset\": %lu, \"refused\": %lu, \"timeout\": %lu, \"other\": %lu, "
           "\"connect_fail\": %lu, \"last_errno\": %d, \"data_bytes\": %lu, \"slow\": %lu, "
           "\"started\": %lu, \"abandoned\": %lu, \"max_latency\": %.6f, \"mean_latency\": %.6f, "
           "\"rate\": %.3f, \"cpu_user\": %.4f, \"cpu_sys\": %.4f, \"inflight\": %d, \"ports\": %d, "
           "\"total\": %lu, \"total_elapsed\": %.6f}\n",
           elapsed, done, eof, reset, refused, timeout, other, connect_fail, last_errno, data, slow,
           started, abandoned, max_latency, done ? sum_latency / done : 0.0,
           elapsed > 0 ? done / elapsed : 0.0, u1 - u0, s1 - s0, inflight, nports, total, t_stop - t0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* echo mode                                                           */

struct econn {
    int fd;
    int sent;     /* bytes of the current message written */
    int received; /* bytes of the current message read back */
};

static int run_echo(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct econn *conns = calloc((size_t)nconns, sizeof *conns);
    struct epoll_event *events = calloc((size_t)nconns, sizeof *events);
    char *msg = malloc((size_t)msg_size), *buf = malloc(65536);
    for (int i = 0; i < msg_size; i++) msg[i] = (char)('a' + i % 26);
    unsigned long messages = 0, bytes = 0, errors = 0, mismatches = 0, total = 0;
    int last_errno = 0;

    for (int i = 0; i < nconns; i++) {
        int fd = start_connect(NULL);
        if (fd < 0) die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    double t0 = now();
    double t_measure = t0 + warmup, t_end = t_measure + duration;
    double u0 = 0, s0 = 0;
    int measuring = 0, alive = nconns;

    while (alive > 0) {
        double t = now();
        if (!measuring && t >= t_measure) {
            measuring = 1;
            cpu_times(&u0, &s0);
            messages = bytes = 0;
        }
        if (t >= t_end || stop_flag) break;
        int n = epoll_wait(ep, events, nconns, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            struct econn *c = &conns[i];
            if (c->fd < 0) continue;
            if (c->sent < msg_size) {
                ssize_t w = send(c->fd, msg + c->sent, (size_t)(msg_size - c->sent), MSG_NOSIGNAL);
                if (w < 0) {
                    if (errno == EAGAIN || errno == EINTR) continue;
                    last_errno = errno;
                    goto fail;
                }
                c->sent += (int)w;
                if (c->sent == msg_size) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, buf, 65536, 0);
                if (r < 0) {
                    if (errno == EAGAIN || errno == EINTR) break;
                    last_errno = errno;
                    goto fail;
                }
                if (r == 0) {
                    last_errno = 0;
                    goto fail;
                }
                if (buf[0] != msg[c->received % msg_size]) mismatches++;
                c->received += (int)r;
                if (c->received >= msg_size) {
                    if (c->received > msg_size) mismatches++;
                    messages++;
                    total++;
                    bytes += (unsigned long)msg_size;
                    c->received = 0;
                    c->sent = 0;
                    ssize_t w = send(c->fd, msg, (size_t)msg_size, MSG_NOSIGNAL);
                    if (w < 0) {
                        if (errno != EAGAIN) { last_errno = errno; goto fail; }
                        w = 0;
                    }
                    c->sent = (int)w;
                    if (c->sent < msg_size) {
                        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    }
                    break;
                }
            }
            continue;
        fail:
            errors++;
            close(c->fd);
            c->fd = -1;
            alive--;
        }
    }
    double t_stop = now();
    double u1, s1;
    cpu_times(&u1, &s1);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    double elapsed = measuring ? t_stop - t_measure : 0;
    printf("{\"mode\": \"echo\", \"elapsed\": %.6f, \"messages\": %lu, \"bytes\": %lu, "
           "\"errors\": %lu, \"mismatches\": %lu, \"last_errno\": %d, \"rate\": %.3f, "
           "\"mb_per_s\": %.3f, \"cpu_user\": %.4f, \"cpu_sys\": %.4f, \"connections\": %d, "
           "\"message_size\": %d, \"total\": %lu, \"total_elapsed\": %.6f}\n",
           elapsed, messages, bytes, errors, mismatches, last_errno,
           elapsed > 0 ? messages / elapsed : 0.0, elapsed > 0 ? bytes / elapsed / 1e6 : 0.0,
           u1 - u0, s1 - s0, nconns, msg_size, total, t_stop - t0);
    return errors ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* idle mode                                                           */

static int run_idle(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    int *fds = malloc(sizeof(int) * (size_t)nconns);
    char *state = calloc((size_t)nconns, 1); /* 0 connecting, 1 connected, 2 lost */
    double *started = calloc((size_t)nconns, sizeof(double));
    struct epoll_event events[256];
    int opened = 0, connected = 0, pending = 0, lost = 0, failed = 0, last_errno = 0;
    double t0 = now(), deadline = t0 + 60.0;

    while (connected + failed < nconns) {
        while (opened < nconns && pending < inflight) {
            int fd = start_connect(NULL);
            if (fd < 0) {
                last_errno = errno;
                fds[opened] = -1;
                state[opened] = 2;
                failed++;
                opened++;
                continue;
            }
            fds[opened] = fd;
            started[opened] = now();
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)opened};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
            opened++;
            pending++;
        }
        if (now() > deadline || stop_flag) break;
        int n = epoll_wait(ep, events, 256, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            if (state[i] != 0) continue;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            pending--;
            if (err || (events[k].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
                last_errno = err;
                failed++;
                state[i] = 2;
                continue;
            }
            state[i] = 1;
            connected++;
            /* keep watching only for the server ending it */
            struct epoll_event ev = {.events = EPOLLRDHUP, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
        }
    }
    double t_ready = now();
    printf("{\"mode\": \"idle\", \"event\": \"ready\", \"connected\": %d, \"failed\": %d, "
           "\"last_errno\": %d, \"connect_seconds\": %.4f}\n",
           connected, failed, last_errno, t_ready - t0);
    fflush(stdout);

    /* hold: until stdin EOF, SIGTERM or HOLD seconds */
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    int stdin_watched = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0;
    double hold_end = now() + hold;
    int done = 0;
    while (!done && !stop_flag && now() < hold_end) {
        int n = epoll_wait(ep, events, 256, 200);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            if (i == UINT32_MAX) {
                char b[256];
                ssize_t r = read(0, b, sizeof b);
                if (r <= 0) done = 1;
                continue;
            }
            if (state[i] == 1) {
                state[i] = 2;
                lost++;
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
            }
        }
    }
    (void)stdin_watched;
    struct linger lg = {1, 0};
    for (int i = 0; i < opened; i++) {
        if (fds[i] >= 0) {
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(fds[i]);
        }
    }
    printf("{\"mode\": \"idle\", \"event\": \"done\", \"connected\": %d, \"failed\": %d, "
           "\"lost\": %d, \"last_errno\": %d, \"held_seconds\": %.3f}\n",
           connected, failed, lost, last_errno, now() - t_ready);
    return 0;
}

/* ------------------------------------------------------------------ */
/* UDP modes                                                           */

#define UDP_BATCH 64
#define UDP_LOST_AFTER 1.0

/* A UDP socket connected to the server (so only its datagrams arrive). */
static int udp_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (nsources) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_addr = sources[0];
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    }
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_addr = dest_addr;
    dst.sin_port = htons((uint16_t)base_port);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) die("connect");
    return fd;
}

struct uslot {
    uint32_t seq;
    int unsent; /* the send failed (EAGAIN, ENOBUFS): retry */
    double sent_at;
};

/* Datagram layout: slot (u32), sequence number (u32), then a pattern. */
static void udp_fill(char *msg, uint32_t slot, uint32_t seq) {
    memcpy(msg, &slot, 4);
    memcpy(msg + 4, &seq, 4);
}

static int run_udp_echo(void) {
    if (msg_size < 8 || msg_size > 65507) usage();
    int fd = udp_socket();
    struct uslot *slots = calloc((size_t)inflight, sizeof *slots);
    char *msg = malloc((size_t)msg_size), *buf = malloc(65536);
    for (int i = 8; i < msg_size; i++) msg[i] = (char)('a' + i % 26);
    unsigned long messages = 0, lost = 0, stale = 0, mismatches = 0, errors = 0, send_retries = 0;
    unsigned long total = 0;
    int last_errno = 0;
    double sum_rtt = 0, max_rtt = 0;

    double t0 = now();
    double t_measure = t0 + warmup, t_end = t_measure + duration;
    double u0 = 0, s0 = 0, next_sweep = t0 + 0.1;
    int measuring = 0;
    double t = t0;

#define UDP_SEND(i)                                                                       \
    do {                                                                                  \
        udp_fill(msg, (uint32_t)(i), slots[i].seq);                                        \
        if (send(fd, msg, (size_t)msg_size, 0) == msg_size) {                             \
            slots[i].unsent = 0;                                                          \
            slots[i].sent_at = t;                                                         \
        } else {                                                                          \
            if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {                  \
                errors++;                                                                 \
                last_errno = errno;                                                       \
            }                                                                             \
            slots[i].unsent = 1;                                                          \
            send_retries++;                                                               \
        }                                                                                 \
    } while (0)

    for (int i = 0; i < inflight; i++) UDP_SEND(i);
    for (;;) {
        t = now();
        if (!measuring && t >= t_measure) {
            measuring = 1;
            cpu_times(&u0, &s0);
            messages = lost = stale = mismatches = send_retries = 0;
            sum_rtt = max_rtt = 0;
        }
        if (t >= t_end || stop_flag) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 50);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        t = now();
        for (int k = 0; n > 0 && k < 4 * UDP_BATCH; k++) {
            ssize_t r = recv(fd, buf, 65536, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                errors++;
                last_errno = errno; /* ECONNREFUSED: nothing listens there */
                break;
            }
            uint32_t slot, seq;
            if (r != msg_size) { mismatches++; continue; }
            memcpy(&slot, buf, 4);
            memcpy(&seq, buf + 4, 4);
            if (slot >= (uint32_t)inflight) { mismatches++; continue; }
            if (seq != slots[slot].seq) { stale++; continue; } /* the echo of one counted lost */
            if (memcmp(buf + 8, msg + 8, (size_t)msg_size - 8) != 0) mismatches++;
            double rtt = t - slots[slot].sent_at;
            sum_rtt += rtt;
            if (rtt > max_rtt) max_rtt = rtt;
            messages++;
            total++;
            slots[slot].seq++;
            UDP_SEND(slot);
        }
        if (t >= next_sweep) {
            next_sweep = t + 0.1;
            for (int i = 0; i < inflight; i++) {
                if (slots[i].unsent) {
                    UDP_SEND(i);
                } else if (t - slots[i].sent_at > UDP_LOST_AFTER) {
                    lost++;
                    slots[i].seq++;
                    UDP_SEND(i);
                }
            }
        }
    }
#undef UDP_SEND
    double t_stop = now();
    double u1, s1;
    cpu_times(&u1, &s1);
    close(fd);
    double elapsed = measuring ? t_stop - t_measure : 0;
    printf("{\"mode\": \"udp-echo\", \"elapsed\": %.6f, \"messages\": %lu, \"lost\": %lu, \"stale\": %lu, "
           "\"mismatches\": %lu, \"errors\": %lu, \"send_retries\": %lu, \"last_errno\": %d, "
           "\"rate\": %.3f, \"mean_rtt_ms\": %.4f, \"max_rtt_ms\": %.4f, \"cpu_user\": %.4f, "
           "\"cpu_sys\": %.4f, \"outstanding\": %d, \"message_size\": %d, \"total\": %lu, "
           "\"total_elapsed\": %.6f}\n",
           elapsed, messages, lost, stale, mismatches, errors, send_retries, last_errno,
           elapsed > 0 ? messages / elapsed : 0.0, messages ? 1000 * sum_rtt / messages : 0.0,
           1000 * max_rtt, u1 - u0, s1 - s0, inflight, msg_size, total, t_stop - t0);
    return 0;
}

static int run_udp_flood(void) {
    if (msg_size < 1 || msg_size > 65507) usage();
    int fd = udp_socket();
    char *msg = malloc((size_t)msg_size);
    for (int i = 0; i < msg_size; i++) msg[i] = (char)('a' + i % 26);
    struct iovec iov = {.iov_base = msg, .iov_len = (size_t)msg_size};
    struct mmsghdr msgs[UDP_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < UDP_BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long sent = 0, blocked = 0, errors = 0, total = 0;
    int last_errno = 0;
    double t0 = now();
    double t_measure = t0 + warmup, t_end = t_measure + duration;
    double u0 = 0, s0 = 0;
    int measuring = 0;
    for (;;) {
        double t = now();
        if (!measuring && t >= t_measure) {
            measuring = 1;
            cpu_times(&u0, &s0);
            sent = blocked = errors = 0;
        }
        if (t >= t_end || stop_flag) break;
        int r = sendmmsg(fd, msgs, UDP_BATCH, 0);
        if (r > 0) {
            sent += (unsigned long)r;
            total += (unsigned long)r;
        } else if (errno == EAGAIN || errno == ENOBUFS) {
            blocked++;
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 10);
        } else if (errno != EINTR) {
            errors++; /* ECONNREFUSED: an ICMP error came back (nothing listening) */
            last_errno = errno;
        }
    }
    double t_stop = now();
    double u1, s1;
    cpu_times(&u1, &s1);
    close(fd);
    double elapsed = measuring ? t_stop - t_measure : 0;
    printf("{\"mode\": \"udp-flood\", \"elapsed\": %.6f, \"sent\": %lu, \"blocked\": %lu, \"errors\": %lu, "
           "\"last_errno\": %d, \"rate\": %.3f, \"cpu_user\": %.4f, \"cpu_sys\": %.4f, "
           "\"message_size\": %d, \"total\": %lu, \"total_elapsed\": %.6f}\n",
           elapsed, sent, blocked, errors, last_errno, elapsed > 0 ? sent / elapsed : 0.0, u1 - u0, s1 - s0,
           msg_size, total, t_stop - t0);
    return 0;
}

static void usage(void);

/* ------------------------------------------------------------------ */
/* serve mode: the generator's ceiling                                 */
/*
 * A minimal C server on 127.0.0.1 (port 0), the same work as the Python
 * servers with no Python: "accept" accepts and closes (FIN), "reset"
 * accepts and resets (SO_LINGER {1,0}), "echo" echoes, "http" answers every
 * request (each CRLFCRLF) with a fixed response on a keep-alive
 * connection. Driving it shows how fast the generator can go.
 * Prints {"port": N, "pid": N}; serves until stdin EOF or SIGTERM.
 */

static const char HTTP_RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/html\r\n\r\nhello\n";

static int run_serve_udp(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr = dest_addr;
    a.sin_port = htons((uint16_t)base_port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    printf("{\"port\": %d, \"pid\": %d, \"listeners\": 1, \"start_seconds\": 0}\n", ntohs(a.sin_port),
           (int)getpid());
    fflush(stdout);
    enum { B = 64 };
    static char bufs[B][2048];
    struct sockaddr_in peers[B];
    struct iovec iovs[B];
    struct mmsghdr msgs[B];
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    while (!stop_flag) {
        int n = poll(p, 2, 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (p[1].revents) {
            char b[256];
            if (read(0, b, sizeof b) <= 0) break;
        }
        if (!p[0].revents) continue;
        for (;;) {
            memset(msgs, 0, sizeof msgs);
            for (int i = 0; i < B; i++) {
                iovs[i].iov_base = bufs[i];
                iovs[i].iov_len = sizeof bufs[i];
                msgs[i].msg_hdr.msg_iov = &iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_name = &peers[i];
                msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
            }
            int r = recvmmsg(fd, msgs, B, 0, NULL);
            if (r <= 0) break;
            for (int i = 0; i < r; i++) iovs[i].iov_len = msgs[i].msg_len;
            sendmmsg(fd, msgs, (unsigned)r, 0);
        }
    }
    return 0;
}

static int run_serve(const char *kind) {
    if (!strcmp(kind, "udp-echo")) return run_serve_udp();
    int k = !strcmp(kind, "accept") ? 0 : !strcmp(kind, "reset") ? 1 : !strcmp(kind, "echo") ? 2
          : !strcmp(kind, "http") ? 3 : -1;
    if (k < 0) usage();
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr = dest_addr;
    a.sin_port = htons((uint16_t)base_port);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(ls, 1024) < 0) die("listen");
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);
    printf("{\"port\": %d, \"pid\": %d, \"listeners\": 1, \"start_seconds\": 0}\n", ntohs(a.sin_port),
           (int)getpid());
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = 0};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
    struct epoll_event events[256];
    char *buf = malloc(65536);
    struct linger lg = {1, 0};
    while (!stop_flag) {
        int n = epoll_wait(ep, events, 256, 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == 0) {
                if (read(0, buf, 4096) <= 0) stop_flag = 1;
                continue;
            }
            if (fd == ls) {
                for (int j = 0; j < 256; j++) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (k == 0) close(c);
                    else if (k == 1) {
                        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                        close(c);
                    } else {
                        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    }
                }
                continue;
            }
            ssize_t r = recv(fd, buf, 65536, 0);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                close(fd);
                continue;
            }
            if (k == 2) {
                if (send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r) close(fd);
            } else {
                int reqs = 0;
                for (ssize_t x = 3; x < r; x++)
                    if (buf[x] == '\n' && buf[x - 1] == '\r' && buf[x - 2] == '\n' && buf[x - 3] == '\r') reqs++;
                for (int q = 0; q < reqs; q++)
                    if (send(fd, HTTP_RESPONSE, sizeof HTTP_RESPONSE - 1, MSG_NOSIGNAL) < 0) break;
            }
        }
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen connect|echo|idle|udp-echo|udp-flood|serve [-h ADDR] -p PORT [-P NPORTS] [-c N] [-d SECS]\n"
            "       [-w WARMUP] [-m BYTES] [-n CONNS] [-t HOLD] [-s SRC[,SRC...]] [-k KIND]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1];
    const char *host = "127.0.0.1";
    int cval = 0;
    int opt;
    optind = 2;
    const char *kind = "accept";
    while ((opt = getopt(argc, argv, "h:p:P:c:d:w:m:n:t:s:k:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': base_port = atoi(optarg); break;
        case 'P': nports = atoi(optarg); break;
        case 'c': cval = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'm': msg_size = atoi(optarg); break;
        case 'n': nconns = atoi(optarg); break;
        case 't': hold = atof(optarg); break;
        case 'k': kind = optarg; break;
        case 's': {
            char *list = strdup(optarg), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (nsources >= MAX_SOURCES || inet_pton(AF_INET, tok, &sources[nsources]) != 1 ||
                    !is_loopback(sources[nsources])) {
                    fprintf(stderr, "loadgen: bad source address %s (127.0.0.0/8 only)\n", tok);
                    return 2;
                }
                nsources++;
            }
            break;
        }
        default: usage();
        }
    }
    if (inet_pton(AF_INET, host, &dest_addr) != 1 || !is_loopback(dest_addr)) {
        fprintf(stderr, "loadgen: destination must be an IPv4 loopback address (127.0.0.0/8)\n");
        return 2;
    }
    int serving = !strcmp(mode, "serve");
    if (base_port < !serving || base_port > 65535 || nports < 1 || base_port + nports - 1 > 65535 ||
        duration <= 0 || duration > 3600 || warmup < 0 || warmup > 60 || msg_size < 1 ||
        msg_size > (1 << 24) || nconns < 1 || nconns > 1000000 || cval < 0 || cval > 100000 ||
        hold <= 0 || hold > 3600)
        usage();
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* an overall alarm: whatever happens, this process ends */
    if (serving) {
        alarm((unsigned)(hold + 1)); /* -t: the most a server lives */
        return run_serve(kind);
    }
    alarm((unsigned)(duration + warmup + hold + 120));
    if (!strcmp(mode, "connect")) {
        inflight = cval > 0 ? cval : 64;
        return run_connect();
    }
    if (!strcmp(mode, "echo")) {
        nconns = cval > 0 ? cval : 50;
        return run_echo();
    }
    if (!strcmp(mode, "idle")) {
        inflight = cval > 0 ? cval : 256;
        return run_idle();
    }
    if (!strcmp(mode, "udp-echo")) {
        inflight = cval > 0 ? cval : 64;
        return run_udp_echo();
    }
    if (!strcmp(mode, "udp-flood")) return run_udp_flood();
    usage();
    return 2;
}
