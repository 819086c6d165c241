/*
 * labhold: start a command held before exec, so that a probe filtered to its pid
 * can be attached first and miss nothing.
 *
 * usage: labhold FD PROGRAM [ARGS...]
 * Waits for one byte on FD (a pipe from ebpf_lab.session), then execs PROGRAM
 * with the same pid. EOF instead of a byte (the lab went away) exits with 125.
 * Between the release and the exec, the only syscalls are the end of read(2)
 * and execve(2).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: labhold FD PROGRAM [ARGS...]\n");
        return 2;
    }
    int fd = atoi(argv[1]);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    char c;
    if (read(fd, &c, 1) != 1) _exit(125);
    execv(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}
