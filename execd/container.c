#define _GNU_SOURCE
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process.h"
#include "rootfs.h"
#include "security.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum { PIPE_SIZE = 1 << 20 };

void
close_stdio_pipes(struct stdio_pipes *p)
{
	close_fdp(&p->in_r);
	close_fdp(&p->in_w);
	close_fdp(&p->out_r);
	close_fdp(&p->out_w);
	close_fdp(&p->err_r);
	close_fdp(&p->err_w);
	close_fdp(&p->console);
}

static int
make_pipe(int *r, int *w, bool nonblock_read, execd_error_t *err)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return error_errno(err, errno, "create stdio pipe");
	*r = fds[0];
	*w = fds[1];
	int ours = nonblock_read ? fds[0] : fds[1];
	/* bigger pipes mean fewer wake-ups on bulk output; failure only costs speed */
	(void) fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE);
	if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
		return error_errno(err, errno, "set stdio pipe non-blocking");
	return 0;
}

int
make_stdio_pipes(const struct spec *s, struct stdio_pipes *p, execd_error_t *err)
{
	*p = STDIO_PIPES_NONE;
	if (make_pipe(&p->out_r, &p->out_w, true, err) < 0 || make_pipe(&p->err_r, &p->err_w, true, err) < 0)
		return -1;
	if (s->open_stdin)
		return make_pipe(&p->in_r, &p->in_w, false, err);
	p->in_r = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (p->in_r < 0)
		return error_errno(err, errno, "open /dev/null");
	return 0;
}

static int
bring_up_loopback(execd_error_t *err)
{
	cleanup_fd int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_errno(err, errno, "socket");
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return error_system(err, errno);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return error_system(err, errno);
	return 0;
}

static int
setup_stdio(const struct stdio_pipes *p, execd_error_t *err)
{
	if (dup2(p->in_r, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0)
		return error_errno(err, errno, "set up stdio");
	return 0;
}

static int
restore_signals(const sigset_t *mask, execd_error_t *err)
{
	/* execd ignores SIGPIPE and blocks SIGCHLD; an ignored signal would survive execve */
	if (signal(SIGPIPE, SIG_DFL) == SIG_ERR || sigprocmask(SIG_SETMASK, mask, NULL) < 0)
		return error_errno(err, errno, "restore signals");
	return 0;
}

/* In the child: enter the joined namespaces (all but pid, which execd entered before clone). */
static int
enter_namespaces(const struct spec *s, execd_error_t *err)
{
	for (size_t i = 0; i < s->njoins; i++)
		if (s->joins[i].flag != CLONE_NEWPID && setns(s->joins[i].fd, s->joins[i].flag) < 0)
			return error_errno(err, errno, "join namespace %s", s->joins[i].path);
	return 0;
}

/* exec mode: enter the container init's cgroups (writing 0 moves the writer) while /sys is the host's. */
static int
join_cgroups(const struct spec *s, execd_error_t *err)
{
	for (size_t i = 0; i < s->join_cgroups.n; i++) {
		char path[PATH_MAX];
		/* cgroup v1: moving this one thread (`tasks`) skips the global threadgroup lock, whose write side
		 * waits for an RCU grace period (10-20 ms on an idle VM) when taken through cgroup.procs. We are
		 * single-threaded here, so the thread is the process. v2 has only cgroup.procs. */
		snprintf(path, sizeof path, "%s/tasks", s->join_cgroups.v[i]);
		cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			snprintf(path, sizeof path, "%s/cgroup.procs", s->join_cgroups.v[i]);
			fd = open(path, O_WRONLY | O_CLOEXEC);
		}
		if (fd < 0 || write(fd, "0", 1) < 0)
			return error_errno(err, errno, "join cgroup %s", s->join_cgroups.v[i]);
	}
	return 0;
}

/* -t: a pty from the container's own devpts (after pivot_root or setns, /dev/ptmx is the container's); the
 * slave becomes the controlling terminal and stdio, the master goes back to execd over console_sock. */
static int
setup_console(const struct spec *s, execd_error_t *err)
{
	if (!s->tty)
		return 0;
	cleanup_fd int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return error_errno(err, errno, "open /dev/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return error_errno(err, errno, "unlock pty");
	cleanup_fd int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return error_errno(err, errno, "open pty slave");
	if (s->console_height && s->console_width) {
		struct winsize ws = { .ws_row = (unsigned short) s->console_height,
				      .ws_col = (unsigned short) s->console_width };
		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			return error_errno(err, errno, "set console size");
	}
	/* the terminal belongs to the user who runs in it, as after a login */
	if (fchown(slave, s->uid, (gid_t) -1) < 0)
		return error_errno(err, errno, "chown pty slave");
	if (setsid() < 0)
		return error_errno(err, errno, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return error_errno(err, errno, "set controlling terminal");
	if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
		return error_errno(err, errno, "set up console stdio");
	if (send_fd(s->console_sock, master) < 0)
		return error_errno(err, errno, "send pty master");
	return 0;
}

/* exec mode: the joins become every namespace of the container's init, mnt last (paths resolve on the host
 * until then); nothing is created. */
static int
add_exec_namespaces(struct spec *s, execd_error_t *err)
{
	static const char *const kinds[] = { "cgroup", "ipc", "uts", "net", "pid", "mnt" };
	if (!s->exec_pid)
		return 0;
	for (size_t i = 0; i < s->njoins; i++)
		free(s->joins[i].path);
	s->njoins = 0;
	s->clone_flags = 0;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/ns/%s", (int) s->exec_pid, kinds[i]);
		s->joins[s->njoins++] = (struct ns_join) { .flag = namespace_flag(kinds[i], strlen(kinds[i])),
							    .path = xstrndup(path, strlen(path)), .fd = -1 };
	}
	if (kill(s->exec_pid, 0) < 0)
		return error_errno(err, errno, "container process %d", (int) s->exec_pid);
	return 0;
}

static int
setup_container(struct spec *s, const struct stdio_pipes *p, const sigset_t *mask, execd_error_t *err)
{
	umask(0);
	/* before the namespaces: the host's /proc shows this process whichever pid namespace it joins */
	if (restore_signals(mask, err) < 0 || setup_stdio(p, err) < 0 || join_cgroups(s, err) < 0 ||
	    set_oom_score_adj(&s->sec, err) < 0 || enter_namespaces(s, err) < 0 || (!s->exec_pid && setup_rootfs(s, err) < 0) || setup_console(s, err) < 0)
		return -1;
	if ((s->clone_flags & CLONE_NEWNET) && bring_up_loopback(err) < 0)
		return error_wrap(err, "bring up lo");
	if ((s->clone_flags & CLONE_NEWUTS) && s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
		return error_errno(err, errno, "sethostname");
	add_home(s);
	if ((!s->exec_pid && make_cwd(s->cwd, err) < 0) || set_rlimits(&s->sec, err) < 0 ||
	    secure_before_user(&s->sec, err) < 0 || set_user(s, err) < 0 || secure_after_user(&s->sec, err) < 0)
		return -1;
	if (chdir(s->cwd) < 0) {
		int e = errno;
		char why[128];
		/* runc's words, which dockerd passes on */
		return error_msg(err, e, "chdir to cwd (\"%s\") set in config.json failed: %s", s->cwd,
				 lower_strerror(e, why, sizeof why));
	}
	umask(022);
	/* nothing of execd but stdio may leak into the container */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return error_errno(err, errno, "close_range");
	if (secure_before_exec(&s->sec, err) < 0)
		return -1;
	return exec_process(s, err);
}

__attribute__((noreturn)) static void
container_main(struct spec *s, const struct stdio_pipes *p, const sigset_t *mask, int report_fd)
{
	execd_error_t err = { 0 };
	setup_container(s, p, mask, &err);
	/* only reached on failure; the report pipe closes on a successful execve */
	(void) write_full(report_fd, &err, sizeof err);
	_exit(err.exit_code ? err.exit_code : 125);
}

/* Open every namespace to join; the pid namespace is entered by execd itself, since setns(CLONE_NEWPID)
 * only affects the children created afterwards. */
static int
open_joined_namespaces(struct spec *s, execd_error_t *err)
{
	for (size_t i = 0; i < s->njoins; i++) {
		struct ns_join *j = &s->joins[i];
		j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
		if (j->fd < 0)
			return error_errno(err, errno, "open namespace %s", j->path);
		if (j->flag == CLONE_NEWPID && setns(j->fd, CLONE_NEWPID) < 0)
			return error_errno(err, errno, "join pid namespace %s", j->path);
	}
	return 0;
}

pid_t
start_container(struct spec *s, struct stdio_pipes *p, const sigset_t *mask, execd_error_t *err)
{
	if (add_exec_namespaces(s, err) < 0 || open_joined_namespaces(s, err) < 0)
		return -1;
	int report[2], console[2] = { -1, -1 };
	if (pipe2(report, O_CLOEXEC) < 0)
		return error_errno(err, errno, "create report pipe");
	cleanup_fd int report_r = report[0];
	cleanup_fd int report_w = report[1];
	if (s->tty && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console) < 0)
		return error_errno(err, errno, "create console socket");
	cleanup_fd int console_r = console[0];
	cleanup_fd int console_w = console[1];
	s->console_sock = console_w;
	/* raw clone: fork semantics in the new namespaces (no stack to manage) */
	pid_t pid = (pid_t) syscall(SYS_clone, (unsigned long) (SIGCHLD | s->clone_flags), NULL, NULL, NULL, NULL);
	if (pid < 0)
		return error_errno(err, errno, "clone");
	if (pid == 0)
		container_main(s, p, mask, report_w);
	close_fdp(&report_w);
	close_fdp(&console_w);
	close_fdp(&p->in_r);
	close_fdp(&p->out_w);
	close_fdp(&p->err_w);
	execd_error_t child_err;
	ssize_t n;
	do
		n = read(report_r, &child_err, sizeof child_err);
	while (n < 0 && errno == EINTR);
	if (n == 0 && console_r >= 0 && (p->console = recv_fd(console_r)) < 0) {
		(void) kill(pid, SIGKILL);
		(void) waitpid(pid, NULL, 0);
		return error_errno(err, errno, "receive pty master");
	}
	if (n == 0)
		return pid;
	(void) waitpid(pid, NULL, 0);
	if (n != (ssize_t) sizeof child_err)
		return error_errno(err, n < 0 ? errno : EPROTO, "read container setup report");
	*err = child_err;
	err->step[sizeof err->step - 1] = err->message[sizeof err->message - 1] = '\0';
	return -1;
}
