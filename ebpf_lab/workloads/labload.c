/*
 * labload: the lab's known workloads, each making an exact number of syscalls.
 *
 * usage: labload [-w] KIND N [ARGS...]
 *   open N DIR PREFIX      create+open then close DIR/PREFIX-<i>, i = 0..N-1
 *   open_missing N DIR PREFIX  open DIR/PREFIX-<i>, which do not exist (ENOENT)
 *   getppid N              N getppid() syscalls; prints ns_per_syscall=<float>
 *   read N SIZE            N read(SIZE) calls on /dev/zero
 *   connect N PORT         N TCP connect() calls to 127.0.0.1:PORT
 *   fork N                 N children that exit at once (each reaped)
 *   sleep MS               sleep MS milliseconds
 * -w: wait for one byte (or EOF) on stdin before starting.
 *
 * Part of ebpf-lab (ebpf_lab/workloads.py builds and runs it). The syscalls are made
 * directly (syscall(2)) so that libc caching cannot hide any of them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int usage(void) {
    fprintf(stderr, "usage: labload [-w] open|open_missing|getppid|read|connect|fork|sleep N [ARGS...]\n");
    return 2;
}

int main(int argc, char **argv) {
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "-w") == 0) {
        char c;
        if (read(0, &c, 1) < 0) perror("read stdin");
        a = 2;
    }
    if (argc - a < 2) return usage();
    const char *kind = argv[a];
    long n = strtol(argv[a + 1], NULL, 10);
    char path[4096];

    if (strcmp(kind, "open") == 0 || strcmp(kind, "open_missing") == 0) {
        if (argc - a < 4) return usage();
        int create = strcmp(kind, "open") == 0;
        long failed = 0;
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%s-%ld", argv[a + 2], argv[a + 3], i);
            int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                                  create ? (O_CREAT | O_WRONLY | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC), 0600);
            if (fd >= 0) syscall(SYS_close, fd);
            else failed++;
        }
        printf("opened=%ld failed=%ld\n", n - failed, failed);
    } else if (strcmp(kind, "getppid") == 0) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        double t1 = now_ns();
        printf("ns_per_syscall=%.2f\n", n ? (t1 - t0) / (double)n : 0.0);
    } else if (strcmp(kind, "read") == 0) {
        if (argc - a < 3) return usage();
        long size = strtol(argv[a + 2], NULL, 10);
        char *buf = malloc(size > 0 ? (size_t)size : 1);
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || !buf) { perror("open /dev/zero"); return 1; }
        for (long i = 0; i < n; i++) syscall(SYS_read, fd, buf, size);
        close(fd);
        printf("reads=%ld size=%ld\n", n, size);
    } else if (strcmp(kind, "connect") == 0) {
        if (argc - a < 3) return usage();
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[a + 2]))};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        long ok = 0, refused = 0, denied = 0;
        for (long i = 0; i < n; i++) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (s < 0) { perror("socket"); return 1; }
            if (syscall(SYS_connect, s, (struct sockaddr *)&sa, sizeof sa) == 0) ok++;
            else if (errno == EPERM || errno == EACCES) denied++;
            else refused++;
            close(s);
        }
        printf("connected=%ld refused=%ld denied=%ld\n", ok, refused, denied);
    } else if (strcmp(kind, "fork") == 0) {
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) _exit(0);
            if (p > 0) waitpid(p, NULL, 0);
        }
        printf("forks=%ld\n", n);
    } else if (strcmp(kind, "sleep") == 0) {
        struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (n % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else {
        return usage();
    }
    fflush(stdout);
    return 0;
}
