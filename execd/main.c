/*
 * execd: the per-container helper of pyd (docs/execd-protocol.md is its contract with the daemon).
 *
 *     execd FD              FD: one end of the daemon's unix socketpair: start and supervise a container
 *     execd --seccomp-bpf   compile the seccomp records on stdin to a BPF program on stdout
 *     execd -- CMD ARGS     the container's PID 1 for --init
 *
 * For a container execd detaches (own session, second fork, child subreaper), reads the spec, starts the
 * container (container.c) and supervises it (supervisor.c) until its init exits; it listens on
 * CONTROL_SOCKET in the state directory so a restarted daemon can reattach, and it outlives the daemon.
 *
 * Style (after crun): one concern per file and per function; failures return -1 with an execd_error_t that
 * each layer wraps with its context (error.h); fds and buffers are released by cleanup attributes; no
 * global state.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container.h"
#include "error.h"
#include "frames.h"
#include "init.h"
#include "jsonlog.h"
#include "protocol.h"
#include "seccomp_compile.h"
#include "spec.h"
#include "statedir.h"
#include "supervisor.h"
#include "util.h"

static int
block_sigchld(sigset_t *old_mask, int *signal_fd, execd_error_t *err)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, old_mask) < 0)
		return error_errno(err, errno, "block SIGCHLD");
	*signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*signal_fd < 0)
		return error_errno(err, errno, "signalfd");
	return 0;
}

/* Keep only the daemon's socket (as fd 3) and /dev/null stdio, then leave the daemon's session. */
static int
detach_from_daemon(int *sock, execd_error_t *err)
{
	if (*sock != 3) {
		if (dup3(*sock, 3, O_CLOEXEC) < 0)
			return error_errno(err, errno, "move daemon socket");
		close(*sock);
		*sock = 3;
	} else if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		return error_errno(err, errno, "set daemon socket close-on-exec");
	(void) close_range(4, ~0U, 0);
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		return error_errno(err, errno, "open /dev/null");
	for (int fd = 0; fd < 3; fd++)
		if (null != fd && dup2(null, fd) < 0)
			return error_errno(err, errno, "redirect stdio to /dev/null");
	if (null > 2)
		close(null);
	(void) setsid();   /* EPERM when the daemon already made us a session leader */
	pid_t pid = fork();
	if (pid < 0)
		return error_errno(err, errno, "fork");
	if (pid > 0)
		_exit(0);   /* the daemon reaps this one; execd is now reparented away from it */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return error_errno(err, errno, "set child subreaper");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return error_errno(err, errno, "ignore SIGPIPE");
	return 0;
}

static int
parse_args(int argc, char **argv)
{
	char *end;
	if (argc != 2)
		return -1;
	long fd = strtol(argv[1], &end, 10);
	if (*end || end == argv[1] || fd < 0 || fd > INT_MAX)
		return -1;
	return (int) fd;
}

static int
prepare(const struct spec *s, struct supervisor *sv, struct stdio_pipes *p, sigset_t *mask, execd_error_t *err)
{
	if (enter_state_dir(s->state_dir, err) < 0 || open_log(s, &sv->log_out, err) < 0 || make_stdio_pipes(s, p, err) < 0)
		return -1;
	if (listen_control_socket(&sv->listen_fd, err) < 0)
		return -1;
	return block_sigchld(mask, &sv->signal_fd, err);
}

/* -t: the pty master is the only output (stream 1, logged as stdout, as Docker does) and, with -i, stdin */
static int
use_console(struct supervisor *sv, struct stdio_pipes *p, bool open_stdin)
{
	close_fdp(&sv->streams[0].fd);
	close_fdp(&sv->streams[1].fd);
	close_fdp(&sv->stdin_fd);
	int master = p->console;
	p->console = -1;
	if (fcntl(master, F_SETFL, O_NONBLOCK) < 0)
		return -1;
	sv->streams[0].fd = master;
	sv->console_fd = dup(master);
	if (open_stdin)
		sv->stdin_fd = dup(master);
	return sv->console_fd < 0 ? -1 : 0;
}

/* Start the container and supervise it until it exits; a failure to start goes to the daemon as ERROR. */
static int
start_and_supervise(struct spec *s, int sock, struct buf *early, const int *attach_fds)
{
	execd_error_t err = { 0 };
	struct stdio_pipes pipes = STDIO_PIPES_NONE;
	sigset_t mask;
	struct supervisor *sv = xrealloc(NULL, sizeof *sv);
	*sv = (struct supervisor) { .signal_fd = -1, .listen_fd = -1, .log_out = { .fd = -1 }, .stdin_fd = -1, .console_fd = -1 };
	sv->chunk = xrealloc(NULL, READ_CHUNK);
	sv->execd_pid = getpid();
	pid_t pid = -1;
	if (prepare(s, sv, &pipes, &mask, &err) == 0)
		pid = start_container(s, &pipes, &mask, &err);
	if (pid > 0 && write_pid_file(pid, &err) < 0) {
		(void) kill(pid, SIGKILL);
		(void) waitpid(pid, NULL, 0);
		pid = -1;
	}
	if (pid < 0) {
		if (sv->listen_fd >= 0)
			(void) unlink(CONTROL_SOCKET);
		close_stdio_pipes(&pipes);
		send_error(sock, &err);
		return 1;
	}
	sv->init_pid = pid;
	sv->stdin_fd = pipes.in_w;
	sv->streams[0] = (struct stream) { .fd = pipes.out_r, .log.id = 1 };
	sv->streams[1] = (struct stream) { .fd = pipes.err_r, .log.id = 2 };
	if (pipes.console >= 0 && use_console(sv, &pipes, s->open_stdin) < 0)
		return 1;
	if (fcntl(sock, F_SETFL, O_NONBLOCK) < 0)
		return 1;
	add_client(sv, sock);
	sv->clients[0].muted = s->mute_daemon;
	sv->clients[0].starter = true;
	for (size_t i = 0; i < s->nattach; i++) {
		/* room for bursts: the reader (a CLI writing to a pipe) takes data in uneven gulps */
		int size = SINK_BUFFER;
		(void) setsockopt(attach_fds[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
		add_client(sv, attach_fds[i]);
		sv->clients[sv->nclients - 1].sink = s->attach_flags[i];
	}
	queue_started(sv, &sv->clients[0]);
	sv->clients[0].in = *early;   /* frames the daemon sent right behind the spec */
	*early = (struct buf) { 0 };
	handle_client_input(sv, &sv->clients[0]);
	supervise(sv);
	return 0;
}

int
main(int argc, char **argv)
{
	execd_error_t err = { 0 };
	struct spec spec = { 0 };
	if (argc >= 3 && strcmp(argv[1], "--") == 0)
		return init_main(argv + 2);
	if (argc == 2 && strcmp(argv[1], "--seccomp-bpf") == 0)
		return seccomp_compile_main();
	int sock = parse_args(argc, argv);
	if (sock < 0) {
		fprintf(stderr, "usage: %s FD  (FD: the daemon's end of a unix socketpair)\n", argv[0]);
		return 2;
	}
	if (detach_from_daemon(&sock, &err) < 0) {
		send_error(sock, &err);
		return 1;
	}
	struct spec_reader rd = { .fd = sock };
	if (read_spec(&rd, &spec, &err) < 0) {
		send_error(sock, &err);
		return 1;
	}
	return start_and_supervise(&spec, sock, &rd.rest, rd.fds);
}
