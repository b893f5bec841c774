/*
 * tlsgen: the TLS load generator of the twisted-sock benchmarks.
 *
 * One thread, non-blocking sockets, epoll and an OpenSSL-API library, so
 * that one core of client outruns one core of Python server; `openssl
 * s_time` does one connection at a time and leaves the server idle half of
 * the time. Compiled by the runner (bench/build.py) with gcc -O2 against
 * BoringSSL where Debian's android-libboringssl-dev is installed (its client
 * handshake costs half of OpenSSL 3.0's, whose certificate decoding alone
 * costs as much as a Python server's handshake), else against the system's
 * OpenSSL (libssl-dev). Loopback (127.0.0.0/8) destinations only.
 *
 *   tlsgen connect -p PORT [-c INFLIGHT] [-d SECS] [-w WARMUP]
 *       New TLS connections, INFLIGHT at a time: every one a full handshake
 *       (no session resumption, no ALPN, no SNI, certificate not verified),
 *       then one byte written, the server's echo of it read, the server's
 *       close_notify read and answered, and the server's FIN awaited.
 *       Outcomes: "ok" (all of that), "bad_echo" (wrong or missing byte),
 *       "handshake_failed", "reset", "refused", "timeout" (5 s), "other".
 *
 *   tlsgen connect -r ...
 *       The same, resuming: every connection offers the session (TLS 1.2
 *       session ticket or id, TLS 1.3 ticket) of the last connection that
 *       went "ok", so all but the first few are resumed handshakes;
 *       "resumed" counts those the server resumed, "offered" those that
 *       offered a session (all but the first INFLIGHT). -2: TLS 1.2 at most.
 *
 *   tlsgen serve -C CERT -K KEY [-p PORT] [-t MAXSECS]
 *       A minimal C TLS server doing the same work as the Python servers
 *       (handshake, echo one byte, close_notify, close): how fast this
 *       generator can go when the server costs little.
 *       Prints {"port": N, "pid": N}; serves until stdin EOF or SIGTERM.
 *
 * Prints one JSON object on stdout at the end. Counts only what completes
 * after the warm-up ("total" counts everything, for CPU per operation).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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

#define CONNECT_TIMEOUT 5.0

static struct in_addr dest_addr;
static int port = 0, inflight = 32, resume = 0, max_tls12 = 0;
static SSL_SESSION *saved_session = NULL; /* -r: the session offered next */
static double duration = 5.0, warmup = 0.5, maxsecs = 900;
static volatile sig_atomic_t stop_flag = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "tlsgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void die_ssl(const char *what) {
    fprintf(stderr, "tlsgen: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void on_term(int sig) { (void)sig; stop_flag = 1; }

static const char *library(void) {
#ifdef OPENSSL_IS_BORINGSSL
    return "BoringSSL";
#else
    return OpenSSL_version(OPENSSL_VERSION);
#endif
}

static void cpu_times(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ */
/* connect mode                                                        */

enum { S_FREE, S_HANDSHAKE, S_WRITE, S_READ, S_SHUTDOWN, S_FIN };
enum { O_OK, O_BAD_ECHO, O_HANDSHAKE, O_RESET, O_REFUSED, O_OTHER, O_PENDING };

struct slot {
    int fd;
    int state;
    int got;      /* bytes of application data read */
    int events;   /* what epoll watches now */
    int offered;  /* -r: started with a saved session */
    SSL *ssl;
    double started;
};

static const char ECHO_BYTE = 'x';

/* The outcome of a failed SSL call, or O_PENDING with *want set. */
static int ssl_wait(struct slot *s, int r, int *want, int *last_errno) {
    int err = SSL_get_error(s->ssl, r);
    if (err == SSL_ERROR_WANT_READ) { *want = EPOLLIN; return O_PENDING; }
    if (err == SSL_ERROR_WANT_WRITE) { *want = EPOLLOUT; return O_PENDING; }
    if (err == SSL_ERROR_SYSCALL) {
        int e = errno;
        ERR_clear_error();
        if (e == ECONNRESET) return O_RESET;
        if (e == ECONNREFUSED) return O_REFUSED;
        *last_errno = e;
        return s->state == S_HANDSHAKE ? O_HANDSHAKE : O_OTHER;
    }
    ERR_clear_error();
    return s->state == S_HANDSHAKE ? O_HANDSHAKE : O_OTHER;
}

/* Drive one connection as far as it goes; O_PENDING with *want, or an outcome. */
static int step(struct slot *s, int *want, int *last_errno) {
    char buf[4096];
    for (;;) {
        int r;
        switch (s->state) {
        case S_HANDSHAKE:
            r = SSL_do_handshake(s->ssl);
            if (r != 1) return ssl_wait(s, r, want, last_errno);
            s->state = S_WRITE;
            break;
        case S_WRITE:
            r = SSL_write(s->ssl, &ECHO_BYTE, 1);
            if (r != 1) return ssl_wait(s, r, want, last_errno);
            s->state = S_READ;
            break;
        case S_READ:
            r = SSL_read(s->ssl, buf, sizeof buf);
            if (r > 0) {
                if (s->got == 0 && buf[0] != ECHO_BYTE) return O_BAD_ECHO;
                s->got += r;
                if (s->got > 1) return O_BAD_ECHO;
                break;
            }
            if (SSL_get_error(s->ssl, r) == SSL_ERROR_ZERO_RETURN) {
                /* the server's close_notify */
                if (s->got != 1) return O_BAD_ECHO;
                s->state = S_SHUTDOWN;
                break;
            }
            r = ssl_wait(s, r, want, last_errno);
            if (r == O_OTHER && s->got != 1) return O_BAD_ECHO;
            return r;
        case S_SHUTDOWN:
            /* answer the close_notify (the Python servers wait for it) */
            r = SSL_shutdown(s->ssl);
            if (r < 0) return ssl_wait(s, r, want, last_errno);
            s->state = S_FIN;
            break;
        case S_FIN:
            r = (int)recv(s->fd, buf, sizeof buf, 0);
            if (r == 0) return O_OK;
            if (r > 0) return O_OTHER;
            if (errno == EAGAIN || errno == EINTR) { *want = EPOLLIN; return O_PENDING; }
            if (errno == ECONNRESET) return O_OK; /* closed; our FIN crossed its close */
            *last_errno = errno;
            return O_OTHER;
        default:
            return O_OTHER;
        }
    }
}

static int start_slot(SSL_CTX *ctx, struct slot *s, int ep, uint32_t index) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_addr = dest_addr;
    dst.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    SSL *ssl = SSL_new(ctx);
    if (!ssl) die_ssl("SSL_new");
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    s->offered = resume && saved_session;
    if (s->offered) SSL_set_session(ssl, saved_session);
    s->fd = fd;
    s->ssl = ssl;
    s->state = S_HANDSHAKE;
    s->got = 0;
    s->events = EPOLLOUT; /* the connect completes first */
    s->started = now();
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = index};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    return 0;
}

static void end_slot(struct slot *s, int abortive) {
    if (abortive) {
        struct linger lg = {1, 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    SSL_free(s->ssl);
    close(s->fd); /* epoll forgets a closed fd */
    s->ssl = NULL;
    s->fd = -1;
    s->state = S_FREE;
}

static int run_connect(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die_ssl("SSL_CTX_new");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* -r keeps sessions itself (SSL_get1_session); no client cache */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (max_tls12) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    unsigned long resumed = 0, offered = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct slot *slots = calloc((size_t)inflight, sizeof *slots);
    struct epoll_event *events = calloc((size_t)inflight, sizeof *events);
    unsigned long counts[O_PENDING] = {0};
    unsigned long timeout = 0, connect_fail = 0, started = 0, abandoned = 0, slow = 0, total = 0;
    int last_errno = 0;
    double max_latency = 0, sum_latency = 0;
    char version[32] = "", cipher[64] = "", group[32] = "";

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
            memset(counts, 0, sizeof counts);
            timeout = connect_fail = started = slow = resumed = offered = 0;
            max_latency = sum_latency = 0;
        }
        if (t >= t_end || stop_flag) break;
        for (int i = 0; i < inflight; i++) {
            if (slots[i].state != S_FREE) continue;
            if (start_slot(ctx, &slots[i], ep, (uint32_t)i) < 0) {
                connect_fail++;
                last_errno = errno;
                continue;
            }
            started++;
        }
        int n = epoll_wait(ep, events, inflight, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            struct slot *s = &slots[i];
            if (s->state == S_FREE) continue;
            int want = 0;
            int outcome = step(s, &want, &last_errno);
            if (outcome == O_PENDING) {
                if (want != s->events) {
                    struct epoll_event ev = {.events = (uint32_t)want, .data.u32 = (uint32_t)i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                    s->events = want;
                }
                continue;
            }
            double lat = now() - s->started;
            if (outcome == O_OK && !version[0]) {
                snprintf(version, sizeof version, "%s", SSL_get_version(s->ssl));
                snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(s->ssl));
#ifdef OPENSSL_IS_BORINGSSL
                const char *g = SSL_get_curve_name(SSL_get_curve_id(s->ssl));
#else
                const char *g = SSL_group_to_name(s->ssl, SSL_get_negotiated_group(s->ssl));
#endif
                snprintf(group, sizeof group, "%s", g ? g : "?");
            }
            if (outcome == O_OK && resume) {
                if (s->offered) offered++;
                if (SSL_session_reused(s->ssl)) resumed++;
                SSL_SESSION *fresh = SSL_get1_session(s->ssl);
                if (fresh && SSL_SESSION_is_resumable(fresh)) {
                    if (saved_session) SSL_SESSION_free(saved_session);
                    saved_session = fresh;
                } else if (fresh) {
                    SSL_SESSION_free(fresh);
                }
            }
            counts[outcome]++;
            total++;
            if (lat > max_latency) max_latency = lat;
            sum_latency += lat;
            if (lat > 1.0) slow++;
            end_slot(s, outcome != O_OK);
        }
        t = now();
        if (t >= next_sweep) {
            next_sweep = t + 0.1;
            for (int i = 0; i < inflight; i++) {
                if (slots[i].state != S_FREE && t - slots[i].started > CONNECT_TIMEOUT) {
                    timeout++;
                    end_slot(&slots[i], 1);
                }
            }
        }
    }
    double t_stop = now();
    double u1, s1;
    cpu_times(&u1, &s1);
    for (int i = 0; i < inflight; i++) {
        if (slots[i].state != S_FREE) {
            end_slot(&slots[i], 1);
            abandoned++;
        }
    }
    double elapsed = measuring ? t_stop - t_measure : 0;
    unsigned long done = 0;
    for (int o = 0; o < O_PENDING; o++) done += counts[o];
    printf("{\"mode\": \"tls-connect\", \"elapsed\": %.6f, \"completed\": %lu, \"ok\": %lu, "
           "\"bad_echo\": %lu, \"handshake_failed\": %lu, \"reset\": %lu, \"refused\": %lu, "
           "\"other\": %lu, \"timeout\": %lu, \"connect_fail\": %lu, \"last_errno\": %d, \"slow\": %lu, "
           "\"started\": %lu, \"abandoned\": %lu, \"max_latency\": %.6f, \"mean_latency\": %.6f, "
           "\"rate\": %.3f, \"cpu_user\": %.4f, \"cpu_sys\": %.4f, \"inflight\": %d, "
           "\"version\": \"%s\", \"cipher\": \"%s\", \"group\": \"%s\", \"library\": \"%s\", "
           "\"total\": %lu, \"total_elapsed\": %.6f, \"resumed\": %lu, \"offered\": %lu}\n",
           elapsed, done, counts[O_OK], counts[O_BAD_ECHO], counts[O_HANDSHAKE], counts[O_RESET],
           counts[O_REFUSED], counts[O_OTHER], timeout, connect_fail, last_errno, slow, started, abandoned,
           max_latency, done ? sum_latency / done : 0.0, elapsed > 0 ? counts[O_OK] / elapsed : 0.0,
           u1 - u0, s1 - s0, inflight, version, cipher, group, library(), total,
           t_stop - t0, resumed, offered);
    if (saved_session) SSL_SESSION_free(saved_session);
    SSL_CTX_free(ctx);
    return 0;
}

/* ------------------------------------------------------------------ */
/* serve mode: the generator's ceiling                                 */

struct sconn {
    SSL *ssl;
    int state; /* S_HANDSHAKE, S_READ (the byte), S_SHUTDOWN (wait for the client's close_notify) */
    int events;
};

static int serve_step(struct sconn *c, int *want) {
    char buf[4096];
    for (;;) {
        int r, err;
        switch (c->state) {
        case S_HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            if (r == 1) { c->state = S_READ; break; }
            goto wait;
        case S_READ:
            r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0) {
                if (SSL_write(c->ssl, buf, r) != r) return -1;
                c->state = S_SHUTDOWN;
                SSL_shutdown(c->ssl); /* sends close_notify */
                break;
            }
            goto wait;
        case S_SHUTDOWN:
            r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0) break;
            if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) return 1;
            goto wait;
        default:
            return -1;
        }
        continue;
    wait:
        err = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        if (err == SSL_ERROR_WANT_READ) { *want = EPOLLIN; return 0; }
        if (err == SSL_ERROR_WANT_WRITE) { *want = EPOLLOUT; return 0; }
        return -1;
    }
}

static int run_serve(const char *cert, const char *key) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) die_ssl("SSL_CTX_new");
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) die_ssl("certificate");
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) die_ssl("private key");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
#ifndef OPENSSL_IS_BORINGSSL
    SSL_CTX_set_num_tickets(ctx, 0);
#endif
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr = dest_addr;
    a.sin_port = htons((uint16_t)port);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(ls, 1024) < 0) die("listen");
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);
    printf("{\"port\": %d, \"pid\": %d, \"listeners\": 1, \"start_seconds\": 0}\n", ntohs(a.sin_port),
           (int)getpid());
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = (uint64_t)-2};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
    /* connections indexed by fd */
    int maxfd = 65536;
    struct sconn *conns = calloc((size_t)maxfd, sizeof *conns);
    struct epoll_event events[256];
    char b[4096];
    while (!stop_flag) {
        int n = epoll_wait(ep, events, 256, 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == (uint64_t)-2) {
                if (read(0, b, sizeof b) <= 0) stop_flag = 1;
                continue;
            }
            if (tag == (uint64_t)-1) {
                for (int j = 0; j < 64; j++) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (c >= maxfd) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[c].ssl = SSL_new(ctx);
                    SSL_set_fd(conns[c].ssl, c);
                    SSL_set_accept_state(conns[c].ssl);
                    conns[c].state = S_HANDSHAKE;
                    conns[c].events = EPOLLIN;
                    struct epoll_event cev = {.events = EPOLLIN, .data.u64 = (uint64_t)c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            int fd = (int)tag;
            struct sconn *c = &conns[fd];
            if (!c->ssl) continue;
            int want = 0;
            int r = serve_step(c, &want);
            if (r == 0) {
                if (want != c->events) {
                    struct epoll_event cev = {.events = (uint32_t)want, .data.u64 = (uint64_t)fd};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
                    c->events = want;
                }
                continue;
            }
            SSL_free(c->ssl);
            c->ssl = NULL;
            close(fd);
        }
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: tlsgen connect [-h ADDR] -p PORT [-c INFLIGHT] [-d SECS] [-w WARMUP] [-r] [-2]\n"
                    "       tlsgen serve -C CERT -K KEY [-h ADDR] [-p PORT] [-t MAXSECS]\n"
                    "       tlsgen version\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (!strcmp(argv[1], "version")) {
        printf("%s\n", library());
        return 0;
    }
    const char *mode = argv[1], *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "h:p:c:d:w:t:C:K:r2")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': inflight = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 't': maxsecs = atof(optarg); break;
        case 'C': cert = optarg; break;
        case 'K': key = optarg; break;
        case 'r': resume = 1; break;
        case '2': max_tls12 = 1; break;
        default: usage();
        }
    }
    if (inet_pton(AF_INET, host, &dest_addr) != 1 || (ntohl(dest_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "tlsgen: destination must be an IPv4 loopback address (127.0.0.0/8)\n");
        return 2;
    }
    int serving = !strcmp(mode, "serve");
    if (port < !serving || port > 65535 || inflight < 1 || inflight > 10000 || duration <= 0 ||
        duration > 3600 || warmup < 0 || warmup > 60 || maxsecs <= 0 || maxsecs > 3600)
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (serving) {
        if (!cert || !key) usage();
        alarm((unsigned)(maxsecs + 1)); /* -t: the most a server lives */
        return run_serve(cert, key);
    }
    if (strcmp(mode, "connect")) usage();
    alarm((unsigned)(duration + warmup + 120)); /* whatever happens, this process ends */
    return run_connect();
}
