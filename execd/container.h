/* Starting the container's process: its stdio pipes, the clone into new (or joined) namespaces, and the
 * child's setup in order (cgroups, namespaces, rootfs, console, network, hostname, security, user), up
 * to execve. A failure in the child comes back to execd whole (execd_error_t) over a report pipe. */
#ifndef EXECD_CONTAINER_H
#define EXECD_CONTAINER_H

#include <signal.h>
#include <sys/types.h>

#include "error.h"
#include "spec.h"

struct stdio_pipes {
	int in_r, in_w;     /* in_w is -1 when the container gets /dev/null */
	int out_r, out_w;
	int err_r, err_w;
	int console;        /* -t: the pty master, received from the container (-1 without a tty) */
};

#define STDIO_PIPES_NONE ((struct stdio_pipes) { -1, -1, -1, -1, -1, -1, -1 })

int make_stdio_pipes(const struct spec *s, struct stdio_pipes *p, execd_error_t *err);
void close_stdio_pipes(struct stdio_pipes *p);

/* The container's init (its host pid) once it has exec'd, or -1 with err; mask: the signal mask the
 * process gets back. */
pid_t start_container(struct spec *s, struct stdio_pipes *p, const sigset_t *mask, execd_error_t *err);

#endif
