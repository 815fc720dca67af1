/*
 * execd: the per-container helper of pyd.
 *
 * The daemon runs `execd FD` with FD one end of a unix stream socketpair. execd detaches (own session,
 * second fork, child subreaper), reads the container spec from FD, sets up the container (namespaces,
 * mounts, pivot_root, user, execve) and then supervises it: it holds the container's stdio pipes, writes
 * its output to the json-file log FIRST and then forwards it to every connected daemon, delivers signals
 * and stdin, and records the exit status. It listens on <state_dir>/execd.sock so a restarted daemon can
 * reattach, and it outlives the daemon.
 *
 * Protocol (version 1). Every frame is an 8-byte header followed by a payload:
 *
 *     u32 length (big endian, payload bytes only)   u16 type (big endian)   u16 reserved (must be 0)
 *
 * A payload longer than MAX_RECORD (1 MiB) is a protocol error: the connection is dropped (during the
 * spec phase an ERROR frame is sent first). Integers in payloads are big endian.
 *
 *   type  name         direction        payload
 *   1     HELLO        daemon -> execd  u32 protocol version; first frame of every connection
 *   2     SPEC         daemon -> execd  key NUL value (see "spec keys" below)
 *   3     SPEC_END     daemon -> execd  empty; execd then starts the container
 *   4     STARTED      execd -> daemon  u32 container init host pid, u32 execd pid
 *                                       (answer to SPEC_END once execve succeeded, or to HELLO on reattach)
 *   5     ERROR        execd -> daemon  i32 errno, u32 exit code (125/126/127), step NUL message
 *   6     OUTPUT       execd -> daemon  u8 stream (1 stdout, 2 stderr), bytes
 *   7     STDIN        daemon -> execd  bytes for the container's stdin (ignored when it has none)
 *   8     STDIN_CLOSE  daemon -> execd  empty; closes stdin once the pending bytes are written
 *   9     KILL         daemon -> execd  u32 signal, sent to the container's init
 *   10    RESIZE       daemon -> execd  u16 height, u16 width: TIOCSWINSZ on the pty (ignored without -t)
 *   11    EXIT         execd -> daemon  i32 exit code, i32 signal (0 none), u64 finished_at (unix ns)
 *
 * Spec keys (SPEC frames; lists repeat their key; an unknown key is rejected so the format can grow):
 *   id, rootfs, hostname, state_dir, log_path (absent: no log), log_max_size (bytes, 0: no rotation),
 *   log_max_file (files kept, rotation as dockerd's json-file), cwd, uid, gid, group*, arg*, env*,
 *   tty (0|1), stdin (0|1), namespace* (mnt pid uts ipc net cgroup), readonly_rootfs (0|1),
 *   mount* (destination NUL type NUL source NUL comma-separated options),
 *   console_height, console_width (initial pty size with tty=1),
 *   exec_pid (exec mode: join every namespace of that container init, mnt included, instead of creating a
 *   container; no rootfs setup, no cwd creation), join_cgroup* (cgroup dirs the process enters first,
 *   container init and exec alike),
 *   security (computed by the daemon, pyd/security.py): caps ("BOUNDING EFFECTIVE PERMITTED INHERITABLE
 *   AMBIENT", hex; absent: untouched), no_new_privs (0|1), privileged (0|1: /sys read-write),
 *   masked_path*, readonly_path*, sysctl* (key=value), rlimit* ("RESOURCE SOFT HARD"),
 *   device* ("c|b MAJOR MINOR MODE PATH"), shm_size (bytes), seccomp_default (libseccomp action),
 *   seccomp_arch* (libseccomp arch name), seccomp_rule* ("ACTION SYSCALL NARGS [INDEX OP VALUE VALUE2]...").
 *
 * With tty=1 the container's process gets a pty from the container's own devpts as its controlling terminal
 * and stdio; the master comes back to execd over SCM_RIGHTS and is the only output stream (1, raw).
 *
 * Files in <state_dir>: execd.sock (control socket), pid (container init host pid), exit (JSON
 * {"exit_code":N,"signal":N|null,"finished_at_ns":N,"oom_killed":false}, written atomically).
 *
 * Style (after crun): one concern per function; failures are returned as -1 with an execd_error_t that
 * names the step and carries errno; fds and buffers are released by cleanup attributes; no global state.
 *
 * Security order (runc's): rlimits, bounding set, seccomp (without no_new_privs it needs CAP_SYS_ADMIN, so
 * before the user switch), setgroups/setgid/setuid, capset + ambient; with no_new_privs the filter is the
 * last step before execve.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum {
	PROTOCOL_VERSION = 1,
	HEADER_SIZE = 8,
	MAX_RECORD = 1 << 20,
	MAX_SPEC_RECORDS = 65536,
	IO_CHUNK = 256 * 1024,   /* one read of a client socket */
	READ_CHUNK = 512 * 1024, /* one read of an output pipe: one OUTPUT frame, so below MAX_RECORD */
	LOG_LINE_MAX = 16 * 1024,      /* Docker splits longer lines into partial entries of this size */
	HIGH_WATER = 1 << 20,           /* per-client backlog above which container pipes are not read */
	MAX_CLIENTS = 16,
	PIPE_SIZE = 1 << 20,
	SINK_BUFFER = 4 << 20,          /* socket send buffer of an attach sink */
	BATCH_MIN = 16 << 10,           /* a read this large is bulk output: the next one waits BATCH_NS */
	LOG_QUEUE_MAX = 4 << 20,        /* log bytes the writer thread may lag behind before output waits */
	BATCH_NS = 1000000,      /* 1 ms: unnoticeable, and a 1 MiB pipe does not fill in it */
	EXIT_FLUSH_MS = 10000,          /* how long a client that stopped reading may delay execd's exit */
};

_Static_assert(READ_CHUNK < MAX_RECORD, "an OUTPUT frame holds one read");

enum frame_type {
	F_HELLO = 1,
	F_SPEC = 2,
	F_SPEC_END = 3,
	F_STARTED = 4,
	F_ERROR = 5,
	F_OUTPUT = 6,
	F_STDIN = 7,
	F_STDIN_CLOSE = 8,
	F_KILL = 9,
	F_RESIZE = 10,
	F_EXIT = 11,
	F_OUTPUT_MODE = 12,
};

/* An attach sink: a client connection the daemon handed over, written directly in Docker's attach format. */
enum attach_flags { ATTACH_STDOUT = 1, ATTACH_STDERR = 2, ATTACH_RAW = 4 };

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CONTROL_SOCKET "execd.sock"

/* ------------------------------------------------------------------------------------------------ */
/* errors and cleanup                                                                                */

typedef struct {
	int errnum;          /* errno of the failed step, 0 when none applies */
	int exit_code;       /* 125 setup failure, 126 cannot invoke, 127 not found */
	char step[160];      /* what was being done, e.g. "mount /proc" */
	char message[864];   /* the sentence for the user, e.g. "mount /proc: Operation not permitted" */
} execd_error_t;

/* The step from fmt; the message is the step, with errno's text appended when with_errno. Returns -1. */
__attribute__((format(printf, 4, 0))) static int
vfail(execd_error_t *err, int errnum, bool with_errno, const char *fmt, va_list ap)
{
	vsnprintf(err->step, sizeof err->step, fmt, ap);
	err->errnum = errnum;
	err->exit_code = 125;
	if (with_errno && errnum)
		snprintf(err->message, sizeof err->message, "%s: %s", err->step, strerror(errnum));
	else
		snprintf(err->message, sizeof err->message, "%s", err->step);
	return -1;
}

__attribute__((format(printf, 3, 4))) static int
fail(execd_error_t *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, errnum, true, fmt, ap);
	va_end(ap);
	return -1;
}

/* A failure whose text says it all (bad spec, bad frame): errno travels along but is not appended. */
__attribute__((format(printf, 3, 4))) static int
fail_msg(execd_error_t *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, errnum, false, fmt, ap);
	va_end(ap);
	return -1;
}

/* Exec failures use Docker's words, which are Go's lower-case errno strings. */
__attribute__((format(printf, 4, 5))) static int
fail_exec(execd_error_t *err, int errnum, int exit_code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	snprintf(err->step, sizeof err->step, "exec");
	err->errnum = errnum;
	err->exit_code = exit_code;
	return -1;
}

static const char *
lower_strerror(int errnum, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(errnum));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] = (char) (buf[0] - 'A' + 'a');
	return buf;
}

static void
close_fdp(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
		*fd = -1;
	}
}

static void
freep(void *p)
{
	free(*(void **) p);
}

#define cleanup_fd __attribute__((cleanup(close_fdp)))
#define cleanup_free __attribute__((cleanup(freep)))

/* Allocation failure leaves a small helper nothing sensible to do: exit with EX_OSERR. */
static void *
xrealloc(void *p, size_t n)
{
	void *r = realloc(p, n ? n : 1);
	if (r == NULL)
		_exit(71);
	return r;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *r = strndup(s, n);
	if (r == NULL)
		_exit(71);
	return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* byte buffers                                                                                      */

struct buf {
	char *data;
	size_t off, len, cap;   /* live bytes are data[off, off+len) */
};

static void
buf_reserve(struct buf *b, size_t n)
{
	if (b->off + b->len + n <= b->cap)
		return;
	if (b->off) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		if (b->len + n <= b->cap)
			return;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

static char *
buf_end(struct buf *b)
{
	return b->data + b->off + b->len;
}

static void
buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(buf_end(b), p, n);
	b->len += n;
}

static void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	*b = (struct buf) { 0 };
}

/* ------------------------------------------------------------------------------------------------ */
/* frames                                                                                            */

static void
put_header(unsigned char h[HEADER_SIZE], uint16_t type, uint32_t len)
{
	uint32_t be_len = htobe32(len);
	uint16_t be_type = htobe16(type);
	memcpy(h, &be_len, 4);
	memcpy(h + 4, &be_type, 2);
	h[6] = h[7] = 0;
}

static uint32_t
get_u32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint16_t
get_u16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return be16toh(v);
}

static int
write_full(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t r = write(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		c += r;
		n -= (size_t) r;
	}
	return 0;
}

struct record {
	uint16_t type;
	uint32_t len;
	char *payload;   /* NUL-terminated copy (the NUL is not counted in len) */
};

/* The spec phase reads through a buffer: a spec is hundreds of small records, and one read(2) each cost
 * a millisecond per container start. Bytes read past SPEC_END stay in `rest` for the event loop. */
struct spec_reader {
	int fd;
	struct buf rest;
	int fds[MAX_CLIENTS];   /* descriptors that came with the spec (SCM_RIGHTS): the attach sinks */
	size_t nfds;
};

/* One read; descriptors passed along are kept (beyond room for them they are closed). */
static ssize_t
reader_recv(struct spec_reader *rd)
{
	union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int) * MAX_CLIENTS)]; } control;
	struct iovec iov = { buf_end(&rd->rest), IO_CHUNK };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control };
	ssize_t n = recvmsg(rd->fd, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0 && errno == ENOTSOCK)
		return read(rd->fd, buf_end(&rd->rest), IO_CHUNK);   /* --seccomp-bpf reads a pipe */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
			if (rd->nfds < MAX_CLIENTS)
				rd->fds[rd->nfds++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

static int
reader_fill(struct spec_reader *rd, size_t need)
{
	while (rd->rest.len < need) {
		buf_reserve(&rd->rest, IO_CHUNK);
		ssize_t n = reader_recv(rd);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		rd->rest.len += (size_t) n;
	}
	return 0;
}

/* Blocking read of one frame; used only in the spec phase, before the event loop. */
static int
read_record(struct spec_reader *rd, struct record *r, execd_error_t *err)
{
	if (reader_fill(rd, HEADER_SIZE) < 0)
		return fail(err, errno, "read spec");
	const unsigned char *h = (const unsigned char *) rd->rest.data + rd->rest.off;
	r->len = get_u32(h);
	r->type = get_u16(h + 4);
	if (h[6] || h[7])
		return fail_msg(err, EPROTO, "read spec: reserved header bits set");
	if (r->len > MAX_RECORD)
		return fail_msg(err, EMSGSIZE, "read spec: record of %u bytes is too large (max %d)", r->len, MAX_RECORD);
	if (reader_fill(rd, HEADER_SIZE + (size_t) r->len) < 0)
		return fail(err, errno, "read spec");
	r->payload = xrealloc(NULL, r->len + 1);
	memcpy(r->payload, rd->rest.data + rd->rest.off + HEADER_SIZE, r->len);
	r->payload[r->len] = '\0';
	buf_consume(&rd->rest, HEADER_SIZE + (size_t) r->len);
	return 0;
}

/* Blocking write of one frame made of two payload parts. */
static int
send_frame(int fd, uint16_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	unsigned char h[HEADER_SIZE];
	put_header(h, type, (uint32_t) (alen + blen));
	struct iovec iov[3] = { { h, sizeof h }, { (void *) a, alen }, { (void *) b, blen } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
	size_t total = sizeof h + alen + blen;
	while (total) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		total -= (size_t) n;
		while (n > 0 && msg.msg_iovlen) {
			if ((size_t) n >= msg.msg_iov->iov_len) {
				n -= (ssize_t) msg.msg_iov->iov_len;
				msg.msg_iov++;
				msg.msg_iovlen--;
			} else {
				msg.msg_iov->iov_base = (char *) msg.msg_iov->iov_base + n;
				msg.msg_iov->iov_len -= (size_t) n;
				n = 0;
			}
		}
	}
	return 0;
}

static void
encode_error(const execd_error_t *err, struct buf *out)
{
	uint32_t head[2] = { htobe32((uint32_t) err->errnum), htobe32((uint32_t) err->exit_code) };
	buf_append(out, head, sizeof head);
	buf_append(out, err->step, strlen(err->step) + 1);
	buf_append(out, err->message, strlen(err->message));
}

static void
send_error(int fd, const execd_error_t *err)
{
	struct buf b = { 0 };
	encode_error(err, &b);
	(void) send_frame(fd, F_ERROR, b.data + b.off, b.len, NULL, 0);
	buf_free(&b);
}

/* ------------------------------------------------------------------------------------------------ */
/* the spec                                                                                          */

struct strv {
	char **v;       /* NULL-terminated */
	size_t n;
};

static void
strv_push(struct strv *s, char *item)
{
	s->v = xrealloc(s->v, (s->n + 2) * sizeof *s->v);
	s->v[s->n++] = item;
	s->v[s->n] = NULL;
}

struct mount_entry {
	char *destination, *type, *source, *options;
};

/* what the container's process may do (caps, seccomp, paths, limits): see "container side: security" */
struct seccomp_rule {
	uint32_t action;
	int syscall;          /* resolved by libseccomp; names unknown on this arch are dropped, as runc does */
	unsigned int nargs;
	struct scmp_arg_cmp args[6];
};

struct device_node {
	char kind;            /* 'c' or 'b' */
	unsigned int major, minor;
	mode_t mode;
	char *path;           /* inside the container */
};

struct security {
	bool has_caps, no_new_privs, privileged, has_seccomp;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	struct strv masked, readonly, sysctls, seccomp_arches;
	uint32_t seccomp_default;
	struct seccomp_rule *rules;
	size_t nrules;
	struct sock_filter *bpf;   /* the filter the daemon had compiled (`execd --seccomp-bpf`) instead of rules */
	size_t bpf_len;            /* instructions */
	struct { int resource; struct rlimit limit; } *rlimits;
	size_t nrlimits;
	struct device_node *devices;
	size_t ndevices;
	unsigned long long shm_size;   /* bytes of /dev/shm; 0 keeps the default */
};

struct ns_join {
	int flag;    /* CLONE_NEWNET, ... */
	char *path;  /* /proc/PID/ns/net, a bind-mounted netns file, ... */
	int fd;
};

struct spec {
	char *id, *rootfs, *hostname, *state_dir, *log_path, *cwd;
	unsigned long log_max_size, log_max_file;   /* json-file rotation; max size 0: none */
	struct strv args, env;
	gid_t *groups;
	size_t ngroups;
	uid_t uid;
	gid_t gid;
	bool tty, open_stdin, readonly_rootfs;
	int clone_flags;
	struct mount_entry *mounts;
	size_t nmounts;
	struct ns_join joins[6];   /* existing namespaces to enter instead of new ones */
	size_t njoins;
	/* tty and exec mode (see the "interactive use" section) */
	pid_t exec_pid;                    /* exec mode: run in the namespaces of this container init */
	struct strv join_cgroups;          /* exec mode: cgroup directories to enter (host paths) */
	unsigned long console_height, console_width;   /* initial pty size; 0 = leave the default */
	int console_sock;                  /* runtime: the child's end for passing the pty master back */
	struct security sec;               /* caps, seccomp, masked paths, rlimits, sysctls, devices */
	int attach_flags[MAX_CLIENTS];     /* attach sinks: enum attach_flags, one per descriptor passed */
	size_t nattach;
	bool mute_daemon;                  /* the daemon wants no OUTPUT frames until it says so */
};

static int
spec_string(const char *key, const char *val, size_t vlen, char **out, execd_error_t *err)
{
	if (strlen(val) != vlen)
		return fail_msg(err, EINVAL, "spec: value of \"%s\" contains a NUL byte", key);
	free(*out);
	*out = xstrndup(val, vlen);
	return 0;
}

static int
spec_uint(const char *key, const char *val, unsigned long max, unsigned long *out, execd_error_t *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || end == val || *end || v > max || val[0] == '-')
		return fail_msg(err, EINVAL, "spec: invalid number \"%s\" for \"%s\"", val, key);
	*out = v;
	return 0;
}

static int
spec_bool(const char *key, const char *val, bool *out, execd_error_t *err)
{
	unsigned long v;
	if (spec_uint(key, val, 1, &v, err) < 0)
		return -1;
	*out = v == 1;
	return 0;
}

static const struct { const char *name; int flag; } namespace_table[] = {
	{ "mnt", CLONE_NEWNS }, { "pid", CLONE_NEWPID }, { "uts", CLONE_NEWUTS },
	{ "ipc", CLONE_NEWIPC }, { "net", CLONE_NEWNET }, { "cgroup", CLONE_NEWCGROUP },
};

static int
namespace_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof namespace_table / sizeof namespace_table[0]; i++)
		if (strlen(namespace_table[i].name) == len && strncmp(name, namespace_table[i].name, len) == 0)
			return namespace_table[i].flag;
	return 0;
}

static int
spec_namespace(const char *val, int *flags, execd_error_t *err)
{
	int flag = namespace_flag(val, strlen(val));
	if (!flag)
		return fail_msg(err, EINVAL, "spec: unknown namespace \"%s\"", val);
	*flags |= flag;
	return 0;
}

/* join value: KIND:PATH, e.g. net:/run/pyd/netns/ID; the mount namespace is always new */
static int
spec_join(struct spec *s, const char *val, execd_error_t *err)
{
	const char *colon = strchr(val, ':');
	int flag = colon ? namespace_flag(val, (size_t) (colon - val)) : 0;
	if (!flag || flag == CLONE_NEWNS || colon[1] != '/')
		return fail_msg(err, EINVAL, "spec: invalid namespace join \"%s\"", val);
	if (s->njoins == sizeof s->joins / sizeof s->joins[0])
		return fail_msg(err, EINVAL, "spec: too many namespace joins");
	s->joins[s->njoins++] = (struct ns_join) { .flag = flag, .path = xstrndup(colon + 1, strlen(colon + 1)), .fd = -1 };
	return 0;
}

/* mount value: destination NUL type NUL source NUL options */
static int
spec_mount(struct spec *s, const char *val, size_t vlen, execd_error_t *err)
{
	const char *fields[4];
	const char *p = val, *end = val + vlen;
	for (int i = 0; i < 4; i++) {
		if (p > end)
			return fail_msg(err, EINVAL, "spec: mount needs 4 NUL-separated fields");
		fields[i] = p;
		p += strnlen(p, (size_t) (end - p)) + 1;
	}
	if (p != end + 1)
		return fail_msg(err, EINVAL, "spec: mount needs exactly 4 NUL-separated fields");
	s->mounts = xrealloc(s->mounts, (s->nmounts + 1) * sizeof *s->mounts);
	s->mounts[s->nmounts++] = (struct mount_entry) {
		.destination = xstrndup(fields[0], strlen(fields[0])),
		.type = xstrndup(fields[1], strlen(fields[1])),
		.source = xstrndup(fields[2], strlen(fields[2])),
		.options = xstrndup(fields[3], strlen(fields[3])),
	};
	return 0;
}

static int
spec_list_item(const char *key, const char *val, size_t vlen, struct strv *list, execd_error_t *err)
{
	char *item = NULL;
	if (spec_string(key, val, vlen, &item, err) < 0)
		return -1;
	strv_push(list, item);
	return 0;
}

/* "ACTION NAME NARGS [INDEX OP VALUE VALUE_TWO]...": one rule of a profile the daemon already evaluated */
static int
spec_seccomp_rule(struct security *sec, const char *val, execd_error_t *err)
{
	char name[128];
	unsigned long action;
	unsigned int nargs;
	int used;
	if (sscanf(val, "%lu %127s %u%n", &action, name, &nargs, &used) != 3 || nargs > 6 || action > UINT32_MAX)
		return fail_msg(err, EINVAL, "spec: invalid seccomp rule \"%s\"", val);
	struct seccomp_rule rule = { .action = (uint32_t) action, .nargs = nargs };
	const char *p = val + used;
	for (unsigned int i = 0; i < nargs; i++) {
		unsigned int index, op;
		unsigned long long v1, v2;
		if (sscanf(p, "%u %u %llu %llu%n", &index, &op, &v1, &v2, &used) != 4 || index > 5 || op < SCMP_CMP_NE ||
		    op > SCMP_CMP_MASKED_EQ)
			return fail_msg(err, EINVAL, "spec: invalid seccomp rule \"%s\"", val);
		rule.args[i] = (struct scmp_arg_cmp) { .arg = index, .op = (enum scmp_compare) op, .datum_a = v1, .datum_b = v2 };
		p += used;
	}
	rule.syscall = seccomp_syscall_resolve_name(name);
	if (rule.syscall == __NR_SCMP_ERROR)
		return 0;
	sec->rules = xrealloc(sec->rules, (sec->nrules + 1) * sizeof *sec->rules);
	sec->rules[sec->nrules++] = rule;
	return 0;
}

/* A compiled filter: struct sock_filter[] in this machine's byte order, as seccomp_export_bpf() wrote it. */
static int
spec_seccomp_bpf(struct security *sec, const char *val, size_t vlen, execd_error_t *err)
{
	if (vlen == 0 || vlen % sizeof(struct sock_filter) || vlen / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return fail_msg(err, EINVAL, "spec: invalid seccomp_bpf of %zu bytes", vlen);
	free(sec->bpf);
	sec->bpf = xrealloc(NULL, vlen);
	memcpy(sec->bpf, val, vlen);
	sec->bpf_len = vlen / sizeof(struct sock_filter);
	sec->has_seccomp = true;
	return 0;
}

static int
spec_rlimit(struct security *sec, const char *val, execd_error_t *err)
{
	int resource;
	unsigned long long soft, hard;
	if (sscanf(val, "%d %llu %llu", &resource, &soft, &hard) != 3 || resource < 0 || resource >= RLIM_NLIMITS)
		return fail_msg(err, EINVAL, "spec: invalid rlimit \"%s\"", val);
	sec->rlimits = xrealloc(sec->rlimits, (sec->nrlimits + 1) * sizeof *sec->rlimits);
	sec->rlimits[sec->nrlimits].resource = resource;
	sec->rlimits[sec->nrlimits++].limit = (struct rlimit) { .rlim_cur = soft, .rlim_max = hard };
	return 0;
}

/* "c|b MAJOR MINOR MODE(octal) PATH" */
static int
spec_device(struct security *sec, const char *val, execd_error_t *err)
{
	char kind;
	unsigned int major, minor, mode;
	int used;
	if (sscanf(val, "%c %u %u %o %n", &kind, &major, &minor, &mode, &used) != 4 || (kind != 'c' && kind != 'b') ||
	    val[used] != '/')
		return fail_msg(err, EINVAL, "spec: invalid device \"%s\"", val);
	sec->devices = xrealloc(sec->devices, (sec->ndevices + 1) * sizeof *sec->devices);
	sec->devices[sec->ndevices++] = (struct device_node) { kind, major, minor, (mode_t) (mode & 07777),
							      xstrndup(val + used, strlen(val + used)) };
	return 0;
}

/* The security keys; returns 1 when key is not one of them. */
static int
spec_security(struct security *sec, const char *key, const char *val, execd_error_t *err)
{
	unsigned long n;
	if (strcmp(key, "caps") == 0) {
		unsigned long long v[5];
		if (sscanf(val, "%llx %llx %llx %llx %llx", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
			return fail_msg(err, EINVAL, "spec: invalid caps \"%s\"", val);
		sec->has_caps = true;
		sec->cap_bounding = v[0], sec->cap_effective = v[1], sec->cap_permitted = v[2];
		sec->cap_inheritable = v[3], sec->cap_ambient = v[4];
		return 0;
	}
	if (strcmp(key, "no_new_privs") == 0)
		return spec_bool(key, val, &sec->no_new_privs, err);
	if (strcmp(key, "privileged") == 0)
		return spec_bool(key, val, &sec->privileged, err);
	if (strcmp(key, "masked_path") == 0 || strcmp(key, "readonly_path") == 0 || strcmp(key, "sysctl") == 0) {
		struct strv *list = key[0] == 'm' ? &sec->masked : key[0] == 'r' ? &sec->readonly : &sec->sysctls;
		if (key[0] != 's' && val[0] != '/')
			return fail_msg(err, EINVAL, "spec: %s \"%s\" is not absolute", key, val);
		strv_push(list, xstrndup(val, strlen(val)));
		return 0;
	}
	if (strcmp(key, "seccomp_default") == 0) {
		if (spec_uint(key, val, UINT32_MAX, &n, err) < 0)
			return -1;
		sec->has_seccomp = true;
		sec->seccomp_default = (uint32_t) n;
		return 0;
	}
	if (strcmp(key, "seccomp_arch") == 0) {
		if (seccomp_arch_resolve_name(val) == 0)
			return fail_msg(err, EINVAL, "spec: unknown seccomp architecture \"%s\"", val);
		strv_push(&sec->seccomp_arches, xstrndup(val, strlen(val)));
		return 0;
	}
	if (strcmp(key, "seccomp_rule") == 0)
		return spec_seccomp_rule(sec, val, err);
	if (strcmp(key, "rlimit") == 0)
		return spec_rlimit(sec, val, err);
	if (strcmp(key, "device") == 0)
		return spec_device(sec, val, err);
	if (strcmp(key, "shm_size") == 0) {
		if (spec_uint(key, val, ULONG_MAX, &n, err) < 0)
			return -1;
		sec->shm_size = n;
		return 0;
	}
	return 1;
}

static int
spec_set(struct spec *s, const char *key, const char *val, size_t vlen, execd_error_t *err)
{
	unsigned long n;
	if (strcmp(key, "id") == 0)
		return spec_string(key, val, vlen, &s->id, err);
	if (strcmp(key, "rootfs") == 0)
		return spec_string(key, val, vlen, &s->rootfs, err);
	if (strcmp(key, "hostname") == 0)
		return spec_string(key, val, vlen, &s->hostname, err);
	if (strcmp(key, "state_dir") == 0)
		return spec_string(key, val, vlen, &s->state_dir, err);
	if (strcmp(key, "log_path") == 0)
		return spec_string(key, val, vlen, &s->log_path, err);
	if (strcmp(key, "log_max_size") == 0)
		return spec_uint(key, val, ULONG_MAX, &s->log_max_size, err);
	if (strcmp(key, "log_max_file") == 0)
		return spec_uint(key, val, 1000, &s->log_max_file, err);
	if (strcmp(key, "cwd") == 0)
		return spec_string(key, val, vlen, &s->cwd, err);
	if (strcmp(key, "arg") == 0)
		return spec_list_item(key, val, vlen, &s->args, err);
	if (strcmp(key, "env") == 0)
		return spec_list_item(key, val, vlen, &s->env, err);
	if (strcmp(key, "mount") == 0)
		return spec_mount(s, val, vlen, err);
	if (strcmp(key, "join_cgroup") == 0)
		return spec_list_item(key, val, vlen, &s->join_cgroups, err);
	if (strcmp(key, "seccomp_bpf") == 0)
		return spec_seccomp_bpf(&s->sec, val, vlen, err);
	if (strlen(val) != vlen)
		return fail_msg(err, EINVAL, "spec: value of \"%s\" contains a NUL byte", key);
	if (strcmp(key, "namespace") == 0)
		return spec_namespace(val, &s->clone_flags, err);
	if (strcmp(key, "join") == 0)
		return spec_join(s, val, err);
	if (strcmp(key, "tty") == 0)
		return spec_bool(key, val, &s->tty, err);
	if (strcmp(key, "stdin") == 0)
		return spec_bool(key, val, &s->open_stdin, err);
	if (strcmp(key, "readonly_rootfs") == 0)
		return spec_bool(key, val, &s->readonly_rootfs, err);
	if (strcmp(key, "output") == 0) {
		bool output;
		if (spec_bool(key, val, &output, err) < 0)
			return -1;
		s->mute_daemon = !output;
		return 0;
	}
	if (strcmp(key, "attach") == 0) {
		if (spec_uint(key, val, ATTACH_STDOUT | ATTACH_STDERR | ATTACH_RAW, &n, err) < 0)
			return -1;
		if (s->nattach == MAX_CLIENTS - 1)
			return fail_msg(err, E2BIG, "spec: more than %d attach sinks", MAX_CLIENTS - 1);
		s->attach_flags[s->nattach++] = (int) n;
		return 0;
	}
	if (strcmp(key, "exec_pid") == 0 || strcmp(key, "console_height") == 0 || strcmp(key, "console_width") == 0) {
		if (spec_uint(key, val, key[0] == 'e' ? INT_MAX : UINT16_MAX, &n, err) < 0)
			return -1;
		if (key[0] == 'e')
			s->exec_pid = (pid_t) n;
		else if (key[8] == 'h')
			s->console_height = n;
		else
			s->console_width = n;
		return 0;
	}
	if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0 || strcmp(key, "group") == 0) {
		if (spec_uint(key, val, UINT32_MAX - 1, &n, err) < 0)
			return -1;
		if (key[0] == 'u')
			s->uid = (uid_t) n;
		else if (key[1] == 'i')
			s->gid = (gid_t) n;
		else {
			s->groups = xrealloc(s->groups, (s->ngroups + 1) * sizeof *s->groups);
			s->groups[s->ngroups++] = (gid_t) n;
		}
		return 0;
	}
	int r = spec_security(&s->sec, key, val, err);
	if (r <= 0)
		return r;
	return fail_msg(err, EINVAL, "spec: unknown key \"%s\"", key);
}

static int
spec_validate(const struct spec *s, execd_error_t *err)
{
	if (s->rootfs == NULL || s->rootfs[0] != '/')
		return fail_msg(err, EINVAL, "spec: rootfs must be an absolute path");
	if (s->state_dir == NULL || s->state_dir[0] != '/')
		return fail_msg(err, EINVAL, "spec: state_dir must be an absolute path");
	if (s->args.n == 0 || s->args.v[0][0] == '\0')
		return fail_msg(err, EINVAL, "spec: no command specified");
	if (s->cwd[0] != '/')
		return fail_msg(err, EINVAL, "spec: cwd \"%s\" is not an absolute path", s->cwd);
	if (!s->exec_pid && !(s->clone_flags & CLONE_NEWNS))
		return fail_msg(err, EINVAL, "spec: the mnt namespace is required");
	for (size_t i = 0; i < s->nmounts; i++)
		if (s->mounts[i].destination[0] != '/')
			return fail_msg(err, EINVAL, "spec: mount destination \"%s\" is not absolute", s->mounts[i].destination);
	return 0;
}

static int
read_hello(struct spec_reader *rd, execd_error_t *err)
{
	struct record r;
	if (read_record(rd, &r, err) < 0)
		return -1;
	cleanup_free char *payload = r.payload;
	if (r.type != F_HELLO || r.len != 4)
		return fail_msg(err, EPROTO, "read spec: the first record must be HELLO with a version");
	uint32_t version = get_u32(payload);
	if (version != PROTOCOL_VERSION)
		return fail_msg(err, EPROTO, "read spec: protocol version %u is not supported (execd speaks %d)", version,
			    PROTOCOL_VERSION);
	return 0;
}

/* HELLO and the SPEC records up to SPEC_END, unchecked as a whole. */
static int
read_spec_records(struct spec_reader *rd, struct spec *s, execd_error_t *err)
{
	if (read_hello(rd, err) < 0)
		return -1;
	s->cwd = xstrndup("/", 1);
	for (int i = 0; i < MAX_SPEC_RECORDS; i++) {
		struct record r;
		if (read_record(rd, &r, err) < 0)
			return -1;
		cleanup_free char *payload = r.payload;
		if (r.type == F_SPEC_END)
			return 0;
		if (r.type != F_SPEC)
			return fail_msg(err, EPROTO, "read spec: unexpected record type %u", r.type);
		size_t klen = strnlen(payload, r.len);
		if (klen == r.len)
			return fail_msg(err, EPROTO, "read spec: record without a NUL after its key");
		if (spec_set(s, payload, payload + klen + 1, r.len - klen - 1, err) < 0)
			return -1;
	}
	return fail_msg(err, E2BIG, "read spec: more than %d records", MAX_SPEC_RECORDS);
}

static int
read_spec(struct spec_reader *rd, struct spec *s, execd_error_t *err)
{
	if (read_spec_records(rd, s, err) < 0)
		return -1;
	if (rd->nfds != s->nattach)
		return fail_msg(err, EPROTO, "read spec: %zu attach records but %zu descriptors", s->nattach, rd->nfds);
	return spec_validate(s, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* state directory files                                                                             */

/* Files are relative: execd lives in its state directory (no sun_path length limit on deep paths).
 * Atomic by rename, without fsync: the state directory lives in the exec-root, which only has to outlive
 * the daemon (the page cache does), not the machine (it is a tmpfs, /run/pyd, that a reboot empties). */
static int
write_file_atomic(const char *name, const char *data, size_t len, execd_error_t *err)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(err, errno, "write %s", name);
	if (write_full(fd, data, len) < 0)
		return fail(err, errno, "write %s", name);
	if (rename(tmp, name) < 0)
		return fail(err, errno, "rename %s", name);
	return 0;
}

static int
enter_state_dir(const struct spec *s, execd_error_t *err)
{
	if (chdir(s->state_dir) < 0)
		return fail(err, errno, "chdir %s", s->state_dir);
	/* a restarted container reuses the directory: old files must not be read as the new ones */
	if (unlink("exit") < 0 && errno != ENOENT)
		return fail(err, errno, "remove stale exit file");
	if (unlink("pid") < 0 && errno != ENOENT)
		return fail(err, errno, "remove stale pid file");
	return 0;
}

static int
listen_control_socket(int *out, execd_error_t *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = CONTROL_SOCKET };
	cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(err, errno, "create control socket");
	if (unlink(CONTROL_SOCKET) < 0 && errno != ENOENT)
		return fail(err, errno, "remove stale control socket");
	if (bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0)
		return fail(err, errno, "bind control socket");
	if (listen(fd, 16) < 0)
		return fail(err, errno, "listen on control socket");
	*out = fd;
	fd = -1;
	return 0;
}

/* The json-file log being written: its fd keeps its number over rotations (dup3), so holders of it stay valid. */
struct log_sink {
	int fd;
	const char *path;
	unsigned long size, max_size, max_file;
};

static int
open_log(const struct spec *s, struct log_sink *out, execd_error_t *err)
{
	*out = (struct log_sink) { .fd = -1, .path = s->log_path, .max_size = s->log_max_size,
				   .max_file = s->log_max_file ? s->log_max_file : 1 };
	if (s->log_path == NULL)
		return 0;
	int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return fail(err, errno, "open log file %s", s->log_path);
	struct stat st;
	if (fstat(fd, &st) == 0)
		out->size = (unsigned long) st.st_size;
	out->fd = fd;
	return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* stdio pipes                                                                                       */

struct stdio_pipes {
	int in_r, in_w;     /* in_w is -1 when the container gets /dev/null */
	int out_r, out_w;
	int err_r, err_w;
	int console;        /* -t: the pty master, received from the container (-1 without a tty) */
};

static void
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
		return fail(err, errno, "create stdio pipe");
	*r = fds[0];
	*w = fds[1];
	int ours = nonblock_read ? fds[0] : fds[1];
	/* bigger pipes mean fewer wake-ups on bulk output; failure only costs speed */
	(void) fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE);
	if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
		return fail(err, errno, "set stdio pipe non-blocking");
	return 0;
}

static int
make_stdio_pipes(const struct spec *s, struct stdio_pipes *p, execd_error_t *err)
{
	*p = (struct stdio_pipes) { -1, -1, -1, -1, -1, -1, -1 };
	if (make_pipe(&p->out_r, &p->out_w, true, err) < 0 || make_pipe(&p->err_r, &p->err_w, true, err) < 0)
		return -1;
	if (s->open_stdin)
		return make_pipe(&p->in_r, &p->in_w, false, err);
	p->in_r = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (p->in_r < 0)
		return fail(err, errno, "open /dev/null");
	return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* container side: mounts                                                                            */

/* Open path inside the rootfs the way the container will see it: symlinks and ".." stay inside. */
static int
open_in_root(int root_fd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t) (flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int) syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

/* mkdir -p inside the rootfs; returns an O_PATH fd of the directory or -1 with errno. */
static int
mkdir_in_root(int root_fd, const char *path, mode_t mode)
{
	char prefix[PATH_MAX];
	if (strlen(path) >= sizeof prefix) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open_in_root(root_fd, path, O_PATH | O_DIRECTORY, 0);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	cleanup_fd int parent = open_in_root(root_fd, "/", O_PATH | O_DIRECTORY, 0);
	if (parent < 0)
		return -1;
	strcpy(prefix, path);
	char *p = prefix;
	while (*p) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		char *name = p;
		while (*p && *p != '/')
			p++;
		char saved = *p;
		*p = '\0';
		fd = open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
		if (fd < 0 && errno == ENOENT) {
			if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
				return -1;
			fd = open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
		}
		if (fd < 0)
			return -1;
		close(parent);
		parent = fd;
		*p = saved;
	}
	fd = parent;
	parent = -1;
	return fd;
}

/* The mount point as an O_PATH fd, created (dir, or empty file for a file bind) when missing. */
static int
mount_point(int root_fd, const char *dest, bool is_dir, int *out, execd_error_t *err)
{
	if (is_dir) {
		*out = mkdir_in_root(root_fd, dest, 0755);
		if (*out < 0)
			return fail(err, errno, "create mount point %s", dest);
		return 0;
	}
	*out = open_in_root(root_fd, dest, O_PATH, 0);
	if (*out >= 0 || errno != ENOENT)
		return *out < 0 ? fail(err, errno, "open mount point %s", dest) : 0;
	cleanup_free char *dir = xstrndup(dest, strlen(dest));
	char *slash = strrchr(dir, '/');
	slash[slash == dir ? 1 : 0] = '\0';
	cleanup_fd int dfd = mkdir_in_root(root_fd, dir, 0755);
	if (dfd < 0)
		return fail(err, errno, "create mount point %s", dest);
	cleanup_fd int f = open_in_root(root_fd, dest, O_CREAT | O_RDONLY, 0644);
	if (f < 0)
		return fail(err, errno, "create mount point %s", dest);
	*out = open_in_root(root_fd, dest, O_PATH, 0);
	if (*out < 0)
		return fail(err, errno, "open mount point %s", dest);
	return 0;
}

static int
mount_on_fd(const char *source, int target_fd, const char *fstype, unsigned long flags, const char *data)
{
	char target[40];
	snprintf(target, sizeof target, "/proc/self/fd/%d", target_fd);
	return mount(source, target, fstype, flags, data);
}

/* Remount flags or propagation on whatever is now mounted at dest. */
static int
mount_again(int root_fd, const char *dest, unsigned long flags)
{
	cleanup_fd int fd = open_in_root(root_fd, dest, O_PATH, 0);
	if (fd < 0)
		return -1;
	return mount_on_fd(NULL, fd, NULL, flags, NULL);
}

static int
bind_host_path(int root_fd, const char *source, const char *dest, bool readonly, execd_error_t *err)
{
	struct stat st;
	if (stat(source, &st) < 0)
		return fail(err, errno, "mount %s: stat %s", dest, source);
	cleanup_fd int target = -1;
	if (mount_point(root_fd, dest, S_ISDIR(st.st_mode), &target, err) < 0)
		return -1;
	if (mount_on_fd(source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(err, errno, "mount %s", dest);
	if (readonly && mount_again(root_fd, dest, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
		return fail(err, errno, "remount %s read-only", dest);
	return 0;
}

struct fs_mount {
	const char *destination, *type;
	unsigned long flags;
	const char *data;
};

static int
mount_fs(int root_fd, const struct fs_mount *m, execd_error_t *err)
{
	cleanup_fd int target = -1;
	if (mount_point(root_fd, m->destination, true, &target, err) < 0)
		return -1;
	if (mount_on_fd(m->type, target, m->type, m->flags, m->data) < 0)
		return fail(err, errno, "mount %s", m->destination);
	return 0;
}

static int
make_device(int dev_fd, const char *name, unsigned int major, unsigned int minor, execd_error_t *err)
{
	if (mknodat(dev_fd, name, S_IFCHR | 0666, makedev(major, minor)) == 0)
		return 0;
	if (errno != EPERM)
		return fail(err, errno, "mknod /dev/%s", name);
	/* without CAP_MKNOD (user namespaces) bind the host's node instead */
	cleanup_fd int f = openat(dev_fd, name, O_CREAT | O_RDONLY | O_CLOEXEC, 0666);
	if (f < 0)
		return fail(err, errno, "create /dev/%s", name);
	char host[32];
	snprintf(host, sizeof host, "/dev/%s", name);
	if (mount_on_fd(host, f, NULL, MS_BIND, NULL) < 0)
		return fail(err, errno, "bind /dev/%s", name);
	return 0;
}

static int
populate_dev(int root_fd, execd_error_t *err)
{
	static const struct { const char *name; unsigned int major, minor; } devices[] = {
		{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
		{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
	};
	static const struct { const char *name, *target; } links[] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
		{ "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" }, { "core", "/proc/kcore" },
	};
	cleanup_fd int dev_fd = open_in_root(root_fd, "/dev", O_PATH | O_DIRECTORY, 0);
	if (dev_fd < 0)
		return fail(err, errno, "open /dev");
	for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
		if (make_device(dev_fd, devices[i].name, devices[i].major, devices[i].minor, err) < 0)
			return -1;
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (symlinkat(links[i].target, dev_fd, links[i].name) < 0)
			return fail(err, errno, "symlink /dev/%s", links[i].name);
	return 0;
}

static int
mount_sys(int root_fd, execd_error_t *err)
{
	static const struct fs_mount sys = { "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL };
	if (mount_fs(root_fd, &sys, err) == 0)
		return 0;
	if (err->errnum != EPERM)
		return -1;
	/* sysfs needs the net namespace's owner; otherwise Docker too falls back to a read-only rbind */
	return bind_host_path(root_fd, "/sys", "/sys", true, err);
}

static int
mount_standard_filesystems(int root_fd, execd_error_t *err)
{
	static const struct fs_mount proc = { "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL };
	static const struct fs_mount dev = { "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k" };
	static const struct fs_mount under_dev[] = {
		{ "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5" },
		{ "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k" },
		{ "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	};
	if (mount_fs(root_fd, &proc, err) < 0 || mount_fs(root_fd, &dev, err) < 0 || populate_dev(root_fd, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof under_dev / sizeof under_dev[0]; i++)
		if (mount_fs(root_fd, &under_dev[i], err) < 0)
			return -1;
	return mount_sys(root_fd, err);
}

struct mount_options {
	unsigned long flags;         /* MS_* for the mount itself */
	unsigned long propagation;   /* MS_PRIVATE, MS_SLAVE, ... | MS_REC */
	bool bind, recursive;
	char data[1024];             /* fs-specific options, comma-separated */
};

static int
parse_mount_options(const char *options, struct mount_options *o, execd_error_t *err)
{
	static const struct { const char *name; bool clear; unsigned long flag; } flag_table[] = {
		{ "ro", false, MS_RDONLY }, { "rw", true, MS_RDONLY }, { "nosuid", false, MS_NOSUID },
		{ "suid", true, MS_NOSUID }, { "nodev", false, MS_NODEV }, { "dev", true, MS_NODEV },
		{ "noexec", false, MS_NOEXEC }, { "exec", true, MS_NOEXEC }, { "sync", false, MS_SYNCHRONOUS },
		{ "async", true, MS_SYNCHRONOUS }, { "dirsync", false, MS_DIRSYNC }, { "noatime", false, MS_NOATIME },
		{ "atime", true, MS_NOATIME }, { "nodiratime", false, MS_NODIRATIME }, { "relatime", false, MS_RELATIME },
		{ "norelatime", true, MS_RELATIME }, { "strictatime", false, MS_STRICTATIME },
	};
	static const struct { const char *name; unsigned long flag; } propagation_table[] = {
		{ "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC }, { "shared", MS_SHARED },
		{ "rshared", MS_SHARED | MS_REC }, { "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
		{ "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
	};
	*o = (struct mount_options) { 0 };
	cleanup_free char *copy = xstrndup(options, strlen(options));
	char *save = NULL;
	for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		bool known = false;
		for (size_t i = 0; !known && i < sizeof flag_table / sizeof flag_table[0]; i++)
			if (strcmp(opt, flag_table[i].name) == 0) {
				o->flags = flag_table[i].clear ? o->flags & ~flag_table[i].flag : o->flags | flag_table[i].flag;
				known = true;
			}
		for (size_t i = 0; !known && i < sizeof propagation_table / sizeof propagation_table[0]; i++)
			if (strcmp(opt, propagation_table[i].name) == 0) {
				o->propagation = propagation_table[i].flag;
				known = true;
			}
		if (known || strcmp(opt, "defaults") == 0)
			continue;
		if (strcmp(opt, "bind") == 0 || strcmp(opt, "rbind") == 0) {
			o->bind = true;
			o->recursive = opt[0] == 'r';
			continue;
		}
		size_t used = strlen(o->data);
		if (used + strlen(opt) + 2 > sizeof o->data)
			return fail_msg(err, E2BIG, "mount options \"%s\" are too long", options);
		snprintf(o->data + used, sizeof o->data - used, "%s%s", used ? "," : "", opt);
	}
	return 0;
}

static int
mount_spec_entry(int root_fd, const struct mount_entry *m, execd_error_t *err)
{
	struct mount_options o;
	if (parse_mount_options(m->options, &o, err) < 0)
		return -1;
	bool bind = o.bind || strcmp(m->type, "bind") == 0;
	bool is_dir = true;
	if (bind) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			return fail(err, errno, "mount %s: stat %s", m->destination, m->source);
		is_dir = S_ISDIR(st.st_mode);
	}
	cleanup_fd int target = -1;
	if (mount_point(root_fd, m->destination, is_dir, &target, err) < 0)
		return -1;
	if (bind) {
		if (mount_on_fd(m->source, target, NULL, MS_BIND | (o.recursive ? MS_REC : 0), NULL) < 0)
			return fail(err, errno, "mount %s", m->destination);
		/* flags on a bind mount only take effect through a remount */
		if (o.flags && mount_again(root_fd, m->destination, MS_BIND | MS_REMOUNT | o.flags) < 0)
			return fail(err, errno, "remount %s", m->destination);
	} else {
		const char *source = m->source[0] ? m->source : m->type;
		if (mount_on_fd(source, target, m->type, o.flags, o.data[0] ? o.data : NULL) < 0)
			return fail(err, errno, "mount %s", m->destination);
	}
	if (o.propagation && mount_again(root_fd, m->destination, o.propagation) < 0)
		return fail(err, errno, "set propagation of %s", m->destination);
	return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* container side: security (devices, sysctls, masked and read-only paths, rlimits, caps, seccomp)     */

/* --device: a node like the host's at its path in the container (before pivot_root) */
static int
make_extra_devices(const struct security *sec, int root_fd, execd_error_t *err)
{
	for (size_t i = 0; i < sec->ndevices; i++) {
		const struct device_node *d = &sec->devices[i];
		cleanup_free char *dir = xstrndup(d->path, strlen(d->path));
		char *slash = strrchr(dir, '/');
		const char *name = slash + 1;
		*slash = '\0';
		cleanup_fd int dfd = mkdir_in_root(root_fd, dir[0] ? dir : "/", 0755);
		if (dfd < 0)
			return fail(err, errno, "create device directory for %s", d->path);
		cleanup_fd int real = open_in_root(root_fd, dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY, 0);
		if (real < 0)
			return fail(err, errno, "open device directory for %s", d->path);
		(void) unlinkat(real, name, 0);
		mode_t type = d->kind == 'b' ? S_IFBLK : S_IFCHR;
		if (mknodat(real, name, type | d->mode, makedev(d->major, d->minor)) < 0)
			return fail(err, errno, "mknod %s", d->path);
	}
	return 0;
}

/* --sysctl key=value, written in the container's own namespaces (after pivot_root, before /proc/sys is ro) */
static int
write_sysctls(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->sysctls.n; i++) {
		const char *kv = sec->sysctls.v[i];
		const char *eq = strchr(kv, '=');
		char path[PATH_MAX];
		if (eq == NULL || snprintf(path, sizeof path, "/proc/sys/%.*s", (int) (eq - kv), kv) >= (int) sizeof path)
			return fail_msg(err, EINVAL, "sysctl \"%s\" is not valid", kv);
		for (char *p = path + 10; *p; p++)
			if (*p == '.')
				*p = '/';
		cleanup_fd int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0 || write_full(fd, eq + 1, strlen(eq + 1)) < 0)
			return fail(err, errno, "write sysctl %.*s", (int) (eq - kv), kv);
	}
	return 0;
}

/* runc's maskPath: /dev/null over a file, an empty read-only tmpfs over a directory; absent paths are fine */
static int
mask_paths(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->masked.n; i++) {
		const char *p = sec->masked.v[i];
		if (mount("/dev/null", p, NULL, MS_BIND, NULL) == 0 || errno == ENOENT)
			continue;
		if (errno != ENOTDIR || mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0") < 0)
			if (errno != ENOENT)
				return fail(err, errno, "mask %s", p);
	}
	return 0;
}

static int
readonly_paths(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->readonly.n; i++) {
		const char *p = sec->readonly.v[i];
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			return fail(err, errno, "bind %s", p);
		}
		if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			return fail(err, errno, "remount %s read-only", p);
	}
	return 0;
}

/* After pivot_root: what only the container's own view of /proc, /sys and /dev can take. */
static int
harden_rootfs(const struct security *sec, execd_error_t *err)
{
	if (sec->shm_size) {
		char data[64];
		snprintf(data, sizeof data, "mode=1777,size=%llu", sec->shm_size);
		if (mount("shm", "/dev/shm", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, data) < 0)
			return fail(err, errno, "set /dev/shm size");
	}
	/* --privileged: /sys writable, as in Docker */
	if (sec->privileged && mount(NULL, "/sys", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 &&
	    mount(NULL, "/sys", NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return fail(err, errno, "remount /sys read-write");
	if (write_sysctls(sec, err) < 0 || readonly_paths(sec, err) < 0 || mask_paths(sec, err) < 0)
		return -1;
	return 0;
}

static int
set_rlimits(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->nrlimits; i++)
		if (setrlimit(sec->rlimits[i].resource, &sec->rlimits[i].limit) < 0)
			return fail(err, errno, "setrlimit %d", sec->rlimits[i].resource);
	return 0;
}

static int
drop_bounding_caps(const struct security *sec, execd_error_t *err)
{
	for (int cap = 0; cap < 64; cap++) {
		if (sec->cap_bounding & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break;   /* past the kernel's last capability */
			return fail(err, errno, "drop capability %d from the bounding set", cap);
		}
	}
	return 0;
}

static int
set_caps(const struct security *sec, execd_error_t *err)
{
	struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++)
		data[i] = (struct __user_cap_data_struct) {
			.effective = (uint32_t) (sec->cap_effective >> (32 * i)),
			.permitted = (uint32_t) (sec->cap_permitted >> (32 * i)),
			.inheritable = (uint32_t) (sec->cap_inheritable >> (32 * i)),
		};
	if (syscall(SYS_capset, &head, data) < 0)
		return fail(err, errno, "set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail(err, errno, "clear ambient capabilities");
	for (int cap = 0; cap < 64; cap++)
		if ((sec->cap_ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return fail(err, errno, "raise ambient capability %d", cap);
	return 0;
}

static void
seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* The profile's rules as a libseccomp filter (the caller releases it). */
static int
build_seccomp(const struct security *sec, scmp_filter_ctx *out, execd_error_t *err)
{
	scmp_filter_ctx ctx = *out = seccomp_init(sec->seccomp_default);
	if (ctx == NULL)
		return fail(err, EINVAL, "seccomp: invalid default action");
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);   /* no_new_privs is ours to decide */
	if (r < 0)
		return fail(err, -r, "seccomp: set attribute");
	for (size_t i = 0; i < sec->seccomp_arches.n; i++) {
		r = seccomp_arch_add(ctx, seccomp_arch_resolve_name(sec->seccomp_arches.v[i]));
		if (r < 0 && r != -EEXIST)
			return fail(err, -r, "seccomp: add architecture %s", sec->seccomp_arches.v[i]);
	}
	for (size_t i = 0; i < sec->nrules; i++) {
		const struct seccomp_rule *rule = &sec->rules[i];
		r = seccomp_rule_add_array(ctx, rule->action, rule->syscall, rule->nargs, rule->args);
		if (r < 0) {
			char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rule->syscall);
			fail(err, -r, "seccomp: add rule for %s", name ? name : "?");
			free(name);
			return -1;
		}
	}
	return 0;
}

/* A compiled filter goes in with one syscall (libseccomp's own load uses no flags either); compiling the
 * rules here instead costs about 10 ms per container. */
static int
load_seccomp(const struct security *sec, execd_error_t *err)
{
	if (sec->bpf_len) {
		struct sock_fprog prog = { .len = (unsigned short) sec->bpf_len, .filter = sec->bpf };
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			return fail(err, errno, "seccomp: load filter");
		return 0;
	}
	__attribute__((cleanup(seccomp_releasep))) scmp_filter_ctx ctx = NULL;
	if (build_seccomp(sec, &ctx, err) < 0)
		return -1;
	int r = seccomp_load(ctx);
	if (r < 0)
		return fail(err, -r, "seccomp: load filter");
	return 0;
}

/* Before the user switch: limits and the bounding set need root's capabilities; without no_new_privs the
 * filter needs CAP_SYS_ADMIN, so it goes in now (runc's order) and must allow what follows until execve. */
static int
secure_before_user(const struct security *sec, execd_error_t *err)
{
	if (set_rlimits(sec, err) < 0)
		return -1;
	if (sec->has_caps && drop_bounding_caps(sec, err) < 0)
		return -1;
	if (sec->has_seccomp && !sec->no_new_privs && load_seccomp(sec, err) < 0)
		return -1;
	return 0;
}

static int
secure_after_user(const struct security *sec, execd_error_t *err)
{
	return sec->has_caps ? set_caps(sec, err) : 0;
}

/* The last step before execve: no_new_privs and then the filter, which no longer needs privileges. */
static int
secure_before_exec(const struct security *sec, execd_error_t *err)
{
	if (!sec->no_new_privs)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(err, errno, "set no_new_privs");
	return sec->has_seccomp ? load_seccomp(sec, err) : 0;
}

static int
pivot_into(int root_fd, execd_error_t *err)
{
	if (fchdir(root_fd) < 0)
		return fail(err, errno, "chdir rootfs");
	/* the old root ends up stacked on the new one; detaching it leaves only the rootfs */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return fail(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return fail(err, errno, "unmount old root");
	if (chdir("/") < 0)
		return fail(err, errno, "chdir /");
	return 0;
}

static int
setup_rootfs(const struct spec *s, execd_error_t *err)
{
	/* slave, like Docker's default: nothing the container mounts reaches the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return fail(err, errno, "make / rslave");
	if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(err, errno, "bind rootfs %s", s->rootfs);
	cleanup_fd int root_fd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return fail(err, errno, "open rootfs %s", s->rootfs);
	if (mount_standard_filesystems(root_fd, err) < 0 || make_extra_devices(&s->sec, root_fd, err) < 0)
		return -1;
	for (size_t i = 0; i < s->nmounts; i++)
		if (mount_spec_entry(root_fd, &s->mounts[i], err) < 0)
			return -1;
	if (pivot_into(root_fd, err) < 0)
		return -1;
	if (s->readonly_rootfs && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		return fail(err, errno, "remount rootfs read-only");
	return harden_rootfs(&s->sec, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* container side: process                                                                           */

static int
bring_up_loopback(execd_error_t *err)
{
	cleanup_fd int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, errno, "bring up lo: socket");
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return fail(err, errno, "bring up lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return fail(err, errno, "bring up lo");
	return 0;
}

static const char *
env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/* HOME from the container's /etc/passwd, as runc does when the spec has none. */
static void
add_home(struct spec *s)
{
	if (env_get(s->env.v, "HOME"))
		return;
	char home[PATH_MAX] = "/";
	char line[1024];
	FILE *f = fopen("/etc/passwd", "re");
	while (f && fgets(line, sizeof line, f)) {
		/* name:password:uid:gid:gecos:home:shell; strsep keeps the empty fields */
		char *fields[7], *p = line;
		int n = 0;
		while (n < 7 && (fields[n] = strsep(&p, ":\n")) != NULL)
			n++;
		char *end;
		if (n < 6 || fields[2][0] == '\0' || strtoul(fields[2], &end, 10) != s->uid || *end)
			continue;
		snprintf(home, sizeof home, "%s", fields[5][0] ? fields[5] : "/");
		break;
	}
	if (f)
		fclose(f);
	char *entry = xrealloc(NULL, strlen(home) + 6);
	sprintf(entry, "HOME=%s", home);
	strv_push(&s->env, entry);
}

/* mkdir -p, as Docker creates a missing working directory */
static int
make_cwd(const char *cwd, execd_error_t *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s", cwd) >= (int) sizeof path)
		return fail(err, ENAMETOOLONG, "mkdir %s", cwd);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return fail(err, errno, "mkdir %s", path);
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

static int
set_user(const struct spec *s, execd_error_t *err)
{
	if (setgroups(s->ngroups, s->groups) < 0)
		return fail(err, errno, "setgroups");
	if (setgid(s->gid) < 0)
		return fail(err, errno, "setgid %u", s->gid);
	if (setuid(s->uid) < 0)
		return fail(err, errno, "setuid %u", s->uid);
	return 0;
}

/* Go's exec.LookPath: the first regular file with an execute bit in $PATH. */
static bool
find_in_path(const char *file, const char *search, char *out, size_t outlen)
{
	const char *p = search;
	for (;;) {
		const char *end = strchrnul(p, ':');
		int n = (int) (end - p);
		if (snprintf(out, outlen, "%.*s%s%s", n, n ? p : ".", "/", file) < (int) outlen) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
				return true;
		}
		if (*end == '\0')
			return false;
		p = end + 1;
	}
}

static int
exec_process(const struct spec *s, execd_error_t *err)
{
	const char *arg0 = s->args.v[0];
	char found[PATH_MAX], why[128];
	const char *file = arg0;
	if (strchr(arg0, '/') == NULL) {
		const char *search = env_get(s->env.v, "PATH");
		if (!find_in_path(arg0, search ? search : DEFAULT_PATH, found, sizeof found))
			return fail_exec(err, ENOENT, 127, "exec: \"%s\": executable file not found in $PATH", arg0);
		file = found;
	} else {
		struct stat st;
		if (stat(arg0, &st) < 0)
			return fail_exec(err, errno, errno == ENOENT ? 127 : 126, "exec: \"%s\": stat %s: %s", arg0, arg0,
					 lower_strerror(errno, why, sizeof why));
		if (S_ISDIR(st.st_mode))
			return fail_exec(err, EACCES, 126, "exec: \"%s\": permission denied", arg0);
	}
	execve(file, s->args.v, s->env.v);
	int e = errno;
	return fail_exec(err, e, e == ENOENT ? 127 : 126, "exec: \"%s\": %s", arg0, lower_strerror(e, why, sizeof why));
}

static int
setup_stdio(const struct stdio_pipes *p, execd_error_t *err)
{
	if (dup2(p->in_r, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0)
		return fail(err, errno, "set up stdio");
	return 0;
}

static int
restore_signals(const sigset_t *mask, execd_error_t *err)
{
	/* execd ignores SIGPIPE and blocks SIGCHLD; an ignored signal would survive execve */
	if (signal(SIGPIPE, SIG_DFL) == SIG_ERR || sigprocmask(SIG_SETMASK, mask, NULL) < 0)
		return fail(err, errno, "restore signals");
	return 0;
}

/* In the child: enter the joined namespaces (all but pid, which execd entered before clone). */
static int
enter_namespaces(const struct spec *s, execd_error_t *err)
{
	for (size_t i = 0; i < s->njoins; i++)
		if (s->joins[i].flag != CLONE_NEWPID && setns(s->joins[i].fd, s->joins[i].flag) < 0)
			return fail(err, errno, "join namespace %s", s->joins[i].path);
	return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* container side: exec mode and the console (-t)                                                    */

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
			return fail(err, errno, "join cgroup %s", s->join_cgroups.v[i]);
	}
	return 0;
}

static int
send_fd(int sock, int fd)
{
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int))]; } control = { 0 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
			      .msg_controllen = sizeof control.space };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int
recv_fd(int sock)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int))]; } control = { 0 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
			      .msg_controllen = sizeof control.space };
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (c == NULL || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
		errno = n < 0 ? errno : EPROTO;
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
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
		return fail(err, errno, "open /dev/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return fail(err, errno, "unlock pty");
	cleanup_fd int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return fail(err, errno, "open pty slave");
	if (s->console_height && s->console_width) {
		struct winsize ws = { .ws_row = (unsigned short) s->console_height,
				      .ws_col = (unsigned short) s->console_width };
		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			return fail(err, errno, "set console size");
	}
	/* the terminal belongs to the user who runs in it, as after a login */
	if (fchown(slave, s->uid, (gid_t) -1) < 0)
		return fail(err, errno, "chown pty slave");
	if (setsid() < 0)
		return fail(err, errno, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return fail(err, errno, "set controlling terminal");
	if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
		return fail(err, errno, "set up console stdio");
	if (send_fd(s->console_sock, master) < 0)
		return fail(err, errno, "send pty master");
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
		return fail(err, errno, "container process %d", (int) s->exec_pid);
	return 0;
}

static int
setup_container(struct spec *s, const struct stdio_pipes *p, const sigset_t *mask, execd_error_t *err)
{
	umask(0);
	if (restore_signals(mask, err) < 0 || setup_stdio(p, err) < 0 || join_cgroups(s, err) < 0 ||
	    enter_namespaces(s, err) < 0 || (!s->exec_pid && setup_rootfs(s, err) < 0) || setup_console(s, err) < 0)
		return -1;
	if ((s->clone_flags & CLONE_NEWNET) && bring_up_loopback(err) < 0)
		return -1;
	if ((s->clone_flags & CLONE_NEWUTS) && s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
		return fail(err, errno, "sethostname");
	add_home(s);
	if ((!s->exec_pid && make_cwd(s->cwd, err) < 0) || secure_before_user(&s->sec, err) < 0 || set_user(s, err) < 0 ||
	    secure_after_user(&s->sec, err) < 0)
		return -1;
	if (chdir(s->cwd) < 0)
		return fail(err, errno, "chdir to cwd %s", s->cwd);
	umask(022);
	/* nothing of execd but stdio may leak into the container */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return fail(err, errno, "close_range");
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

/* ------------------------------------------------------------------------------------------------ */
/* execd side: starting the container                                                                */

/* Open every namespace to join; the pid namespace is entered by execd itself, since setns(CLONE_NEWPID)
 * only affects the children created afterwards. */
static int
open_joined_namespaces(struct spec *s, execd_error_t *err)
{
	for (size_t i = 0; i < s->njoins; i++) {
		struct ns_join *j = &s->joins[i];
		j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
		if (j->fd < 0)
			return fail(err, errno, "open namespace %s", j->path);
		if (j->flag == CLONE_NEWPID && setns(j->fd, CLONE_NEWPID) < 0)
			return fail(err, errno, "join pid namespace %s", j->path);
	}
	return 0;
}

static pid_t
start_container(struct spec *s, struct stdio_pipes *p, const sigset_t *mask, execd_error_t *err)
{
	if (add_exec_namespaces(s, err) < 0 || open_joined_namespaces(s, err) < 0)
		return -1;
	int report[2], console[2] = { -1, -1 };
	if (pipe2(report, O_CLOEXEC) < 0)
		return fail(err, errno, "create report pipe");
	cleanup_fd int report_r = report[0];
	cleanup_fd int report_w = report[1];
	if (s->tty && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console) < 0)
		return fail(err, errno, "create console socket");
	cleanup_fd int console_r = console[0];
	cleanup_fd int console_w = console[1];
	s->console_sock = console_w;
	/* raw clone: fork semantics in the new namespaces (no stack to manage) */
	pid_t pid = (pid_t) syscall(SYS_clone, (unsigned long) (SIGCHLD | s->clone_flags), NULL, NULL, NULL, NULL);
	if (pid < 0)
		return fail(err, errno, "clone");
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
		return fail(err, errno, "receive pty master");
	}
	if (n == 0)
		return pid;
	(void) waitpid(pid, NULL, 0);
	if (n != (ssize_t) sizeof child_err)
		return fail(err, n < 0 ? errno : EPROTO, "read container setup report");
	*err = child_err;
	err->step[sizeof err->step - 1] = err->message[sizeof err->message - 1] = '\0';
	return -1;
}

static int
block_sigchld(sigset_t *old_mask, int *signal_fd, execd_error_t *err)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, old_mask) < 0)
		return fail(err, errno, "block SIGCHLD");
	*signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*signal_fd < 0)
		return fail(err, errno, "signalfd");
	return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* json-file log                                                                                     */

static void
format_time(const struct timespec *ts, char *out, size_t len)
{
	struct tm tm;
	gmtime_r(&ts->tv_sec, &tm);
	size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ts->tv_nsec) {
		/* Go's RFC3339Nano: nanoseconds without trailing zeros */
		n += (size_t) snprintf(out + n, len - n, ".%09ld", ts->tv_nsec);
		while (out[n - 1] == '0')
			n--;
	}
	snprintf(out + n, len - n, "Z");
}

/* Length of the valid UTF-8 sequence at s, or 0 when the byte at s starts none. */
static size_t
utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		if (c == 0xED)
			hi = 0x9F;   /* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/* Bytes that json-file copies as they are: printable ASCII but for '"', '\\', '<', '>' and '&'. */
static const unsigned char json_plain[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x20-0x2F: '"' '&' */
	[0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1,            /* 0x30-0x3F: '<' '>' */
	[0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,            /* 0x5C: '\\' */
	[0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The index of the first byte from j on that json-file does not copy as it is (n if none). With SSE2 (every
 * x86-64) 16 bytes at a time: a log is mostly plain text, and this scan is most of the encoder's time. */
__attribute__((optimize("O2")))
static size_t
plain_run(const unsigned char *s, size_t j, size_t n)
{
#ifdef __SSE2__
	const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
		      lt = _mm_set1_epi8('<'), gt = _mm_set1_epi8('>'), amp = _mm_set1_epi8('&');
	for (; j + 16 <= n; j += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *) (s + j));
		/* signed: below 0x20 catches the control characters and every byte of 0x80 and up */
		__m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, space),
			      _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
			      _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, lt), _mm_cmpeq_epi8(v, gt)), _mm_cmpeq_epi8(v, amp))));
		int mask = _mm_movemask_epi8(bad);
		if (mask)
			return j + (size_t) __builtin_ctz((unsigned) mask);
	}
#endif
	while (j < n && json_plain[s[j]])
		j++;
	return j;
}

/* Docker's json-file escaping of the one byte at *i that plain_run stopped at (with what follows it, for
 * UTF-8 sequences up to n): HTML-safe, control characters as \u00XX, bad bytes as \ufffd. Writes at most 6
 * bytes per byte taken at o; returns the end and moves *i past what it took. */
static char *
json_escape_at(char *o, const unsigned char *s, size_t *i, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = s[*i];
	if (c < 0x80) {
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char) c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else {
			memcpy(o, "\\u00", 4);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 0xF];
			o += 6;
		}
		*i += 1;
		return o;
	}
	size_t len = utf8_sequence(s + *i, n - *i);
	if (len == 0) {
		memcpy(o, "\\ufffd", 6);
		o += 6;
		len = 1;
	} else if (len == 3 && c == 0xE2 && s[*i + 1] == 0x80 && (s[*i + 2] == 0xA8 || s[*i + 2] == 0xA9)) {
		memcpy(o, s[*i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
		o += 6;
	} else {
		memcpy(o, s + *i, len);
		o += len;
	}
	*i += len;
	return o;
}

/* s[0..n) as a JSON string in json-file's escaping. Writes at most n * 6 + 2 bytes at o; returns the end.
 * Runs of plain bytes (all of most logs) are copied whole. */
__attribute__((optimize("O2")))
static char *
json_string_to(char *o, const unsigned char *s, size_t n)
{
	*o++ = '"';
	for (size_t i = 0; i < n;) {
		size_t j = plain_run(s, i, n);
		memcpy(o, s + i, j - i);
		o += j - i;
		i = j;
		if (i < n)
			o = json_escape_at(o, s, &i, n);
	}
	*o++ = '"';
	return o;
}

/* The part of an entry after the log text; the same for every line of one read. */
static size_t
entry_tail(char *out, size_t len, int stream, const char *time)
{
	return (size_t) snprintf(out, len, ",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream == 1 ? "stdout" : "stderr", time);
}

/* One entry, built in place with one reservation. */
__attribute__((optimize("O2")))
static void
log_entry(struct buf *log, const char *data, size_t n, const char *tail, size_t tail_len)
{
	static const char head[] = "{\"log\":";
	buf_reserve(log, sizeof head - 1 + n * 6 + 2 + tail_len);
	char *o = buf_end(log);
	memcpy(o, head, sizeof head - 1);
	o = json_string_to(o + sizeof head - 1, (const unsigned char *) data, n);
	memcpy(o, tail, tail_len);
	o += tail_len;
	log->len = (size_t) (o - (log->data + log->off));
}

struct stream {
	int fd;
	int id;               /* 1 stdout, 2 stderr */
	struct buf partial;   /* bytes of a line not yet ended by a newline */
	long long rest_until; /* monotonic ns: bulk output rests in the pipe until then (see read_stream) */
};

static long long
monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The entries of the whole lines (and LOG_LINE_MAX pieces of longer ones) at the start of data, in one
 * pass over the bytes: the scan for bytes to escape finds the newlines too. Returns the bytes they took;
 * the rest is a line that has not ended yet, shorter than LOG_LINE_MAX. */
__attribute__((optimize("O2")))
static size_t
log_whole_lines(struct buf *log, const char *data, size_t n, const char *tail, size_t tail_len)
{
	static const char head[] = "{\"log\":\"";
	const unsigned char *s = (const unsigned char *) data;
	size_t start = 0;
	while (start < n) {
		size_t limit = n - start > LOG_LINE_MAX ? start + LOG_LINE_MAX : n;
		buf_reserve(log, sizeof head + (limit - start) * 6 + 2 + tail_len);
		char *o = buf_end(log);
		memcpy(o, head, sizeof head - 1);
		o += sizeof head - 1;
		size_t i = start;
		bool ended = false;
		while (!ended) {
			size_t j = plain_run(s, i, limit);
			memcpy(o, s + i, j - i);
			o += j - i;
			i = j;
			if (i == limit)
				break;
			ended = s[i] == '\n';
			o = json_escape_at(o, s, &i, limit);
		}
		if (!ended && limit - start < LOG_LINE_MAX)
			return start;   /* the entry begun at buf_end is not counted: the caller keeps the bytes */
		*o++ = '"';
		memcpy(o, tail, tail_len);
		o += tail_len;
		log->len = (size_t) (o - (log->data + log->off));
		start = i;
	}
	return n;
}

/* Split output into log entries: one per line, a line longer than LOG_LINE_MAX in pieces. */
static void
log_lines(struct buf *log, struct stream *st, const char *data, size_t n, const char *time)
{
	char tail[96];
	size_t tail_len = entry_tail(tail, sizeof tail, st->id, time);
	while (n) {
		if (st->partial.len == 0) {
			size_t took = log_whole_lines(log, data, n, tail, tail_len);
			if (took < n)
				buf_append(&st->partial, data + took, n - took);
			return;
		}
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t) (nl - data) + 1 : n;
		if (take > LOG_LINE_MAX - st->partial.len)
			take = LOG_LINE_MAX - st->partial.len;
		buf_append(&st->partial, data, take);
		if (data[take - 1] == '\n' || st->partial.len == LOG_LINE_MAX) {
			log_entry(log, st->partial.data + st->partial.off, st->partial.len, tail, tail_len);
			buf_consume(&st->partial, st->partial.len);
		}
		data += take;
		n -= take;
	}
}

static void
current_time(char *out, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	format_time(&ts, out, len);
}

/* dockerd's json-file rotation: <log>.N-1 -> <log>.N ... <log> -> <log>.1, then a new <log>; with one file
 * the log is truncated instead. A failure keeps writing where it was: logging never stops the container.
 * The oldest file is unlinked first so that no rename replaces a file: ext4 flushes a file renamed over
 * another (auto_da_alloc), which started 20 MB of writeback at every rotation of a busy log. */
static void
log_rotate(struct log_sink *l)
{
	char from[PATH_MAX], to[PATH_MAX];
	l->size = 0;
	if (l->max_file < 2) {
		(void) ftruncate(l->fd, 0);
		return;
	}
	snprintf(to, sizeof to, "%s.%lu", l->path, l->max_file - 1);
	(void) unlink(to);
	for (unsigned long i = l->max_file - 1; i > 0; i--) {
		if (i == 1)
			snprintf(from, sizeof from, "%s", l->path);
		else
			snprintf(from, sizeof from, "%s.%lu", l->path, i - 1);
		snprintf(to, sizeof to, "%s.%lu", l->path, i);
		(void) rename(from, to);
	}
	int fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	(void) dup3(fd, l->fd, O_CLOEXEC);
	close(fd);
}

/* Write whole entries (each ends with a newline), rotating before one that would reach max-size; an entry
 * larger than max-size still goes whole into a fresh file, as in dockerd. */
static void
log_write(struct log_sink *l, struct buf *log)
{
	const char *p = log->data + log->off;
	size_t n = log->len;
	while (n) {
		size_t take = n;
		if (l->max_size && l->size + n >= l->max_size) {
			/* the entries that end below max-size: up to the last newline before the limit */
			size_t limit = l->size < l->max_size ? (size_t) (l->max_size - 1 - l->size) : 0;
			const char *nl = memrchr(p, '\n', limit);
			take = nl ? (size_t) (nl - p) + 1 : 0;
			if (take == 0 && l->size > 0) {
				log_rotate(l);
				continue;
			}
			if (take == 0) {   /* a fresh file: the first entry goes whole, however large */
				nl = memchr(p, '\n', n);
				take = nl ? (size_t) (nl - p) + 1 : n;
			}
		}
		/* a full disk must not stop the container or its attached clients; the bytes are dropped */
		(void) write_full(l->fd, p, take);
		l->size += take;
		p += take;
		n -= take;
	}
	buf_consume(log, log->len);
}

/* Bulk output is logged by a second thread, so that encoding the entries and the file system's work
 * (about a quarter of the time of a 280 MB stream) overlap with reading the pipes and feeding attach
 * sinks. The thread starts at the first bulk read; from then on the loop queues what it reads, as it
 * read it (records below), and the thread owns the streams' partial lines. The queue is bounded (the
 * loop waits when the writer lags LOG_QUEUE_MAX behind). log_queue_drain() is for the points that need
 * the bytes in the file: OUTPUT to a daemon (logs -f reads the file), the exit. */
struct log_record {        /* then the time text (time_len bytes), then the output (len bytes) */
	uint32_t len;          /* 0: the stream ended, its partial line goes out */
	uint8_t stream_index;  /* 0 stdout, 1 stderr */
	uint8_t time_len;
};

struct log_queue {
	pthread_mutex_t mu;
	pthread_cond_t changed;
	struct buf pending;   /* log_records for the writer */
	bool started, busy, stop;
	pthread_t thread;
	struct log_sink *sink;
	struct stream *streams;   /* the supervisor's two; the writer alone uses their `partial` */
};

static void log_records(struct log_queue *q, struct buf *records, struct buf *entries);

static void *
log_writer_main(void *arg)
{
	struct log_queue *q = arg;
	struct buf mine = { 0 }, entries = { 0 };
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->pending.len == 0 && !q->stop)
			pthread_cond_wait(&q->changed, &q->mu);
		if (q->pending.len == 0)
			break;
		struct buf taken = q->pending;   /* swap: the loop appends to the (empty) buffer we had */
		q->pending = mine;
		q->busy = true;
		pthread_cond_broadcast(&q->changed);
		pthread_mutex_unlock(&q->mu);
		log_records(q, &taken, &entries);
		log_write(q->sink, &entries);
		mine = taken;
		pthread_mutex_lock(&q->mu);
		q->busy = false;
		pthread_cond_broadcast(&q->changed);
	}
	pthread_mutex_unlock(&q->mu);
	buf_free(&mine);
	buf_free(&entries);
	return NULL;
}

/* Start the writer (signals blocked in it: they are the loop's); false if it cannot run. */
static bool
log_queue_start(struct log_queue *q, struct log_sink *sink, struct stream *streams)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->changed, NULL);
	q->sink = sink;
	q->streams = streams;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	q->started = pthread_create(&q->thread, NULL, log_writer_main, q) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q->started;
}

/* Queue what stream index read at `time` (n 0: the stream ended). */
static void
log_queue_push(struct log_queue *q, int index, const char *time, const char *data, size_t n)
{
	struct log_record r = { .len = (uint32_t) n, .stream_index = (uint8_t) index, .time_len = (uint8_t) strlen(time) };
	pthread_mutex_lock(&q->mu);
	while (q->pending.len >= LOG_QUEUE_MAX)
		pthread_cond_wait(&q->changed, &q->mu);
	buf_append(&q->pending, &r, sizeof r);
	buf_append(&q->pending, time, r.time_len);
	if (n)
		buf_append(&q->pending, data, n);
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->mu);
}

static void
log_queue_drain(struct log_queue *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->mu);
	while (q->pending.len || q->busy)
		pthread_cond_wait(&q->changed, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

static void
log_queue_stop(struct log_queue *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	q->started = false;
}

/* ------------------------------------------------------------------------------------------------ */
/* supervision: event loop                                                                           */

struct client {
	int fd;
	struct buf in, out;
	int sink;     /* 0: a daemon speaking this protocol; else an attach sink (enum attach_flags) */
	bool muted;   /* a daemon that asked for no OUTPUT frames */
};

struct supervisor {
	pid_t init_pid, execd_pid;
	int signal_fd, listen_fd, stdin_fd;
	struct log_sink log_out;
	int console_fd;       /* -t: the pty master, for RESIZE (-1 without a tty) */
	struct stream streams[2];
	struct buf stdin_pending;
	bool stdin_close_requested;
	struct client clients[MAX_CLIENTS];
	size_t nclients;
	bool exited;
	int wait_status;
	struct timespec finished_at;
	struct buf log;
	struct log_queue log_queue;
	char *chunk;         /* READ_CHUNK bytes, a separate allocation: untouched, not resident, until output comes */
};

static void
drop_client(struct client *c)
{
	close_fdp(&c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
}

static void
compact_clients(struct supervisor *sv)
{
	size_t j = 0;
	for (size_t i = 0; i < sv->nclients; i++)
		if (sv->clients[i].fd >= 0)
			sv->clients[j++] = sv->clients[i];
	sv->nclients = j;
}

static void
flush_client(struct client *c)
{
	while (c->fd >= 0 && c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			drop_client(c);
			return;
		}
		buf_consume(&c->out, (size_t) n);
	}
}

/* Send head+a+b, buffering what the socket does not take now; with nothing queued, one sendmsg and no copy. */
static void
queue_bytes(struct client *c, const void *head, size_t hlen, const void *a, size_t alen, const void *b, size_t blen)
{
	if (c->fd < 0)
		return;
	size_t total = hlen + alen + blen, sent = 0;
	if (c->out.len == 0) {
		struct iovec iov[3] = { { (void *) head, hlen }, { (void *) a, alen }, { (void *) b, blen } };
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
		ssize_t n;
		do
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			drop_client(c);
			return;
		}
		sent = n > 0 ? (size_t) n : 0;
		if (sent == total)
			return;
	}
	const struct { const void *p; size_t n; } parts[3] = { { head, hlen }, { a, alen }, { b, blen } };
	for (size_t i = 0; i < 3; i++) {
		size_t skip = sent < parts[i].n ? sent : parts[i].n;
		sent -= skip;
		buf_append(&c->out, (const char *) parts[i].p + skip, parts[i].n - skip);
	}
}

static void
queue_frame(struct client *c, uint16_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	unsigned char h[HEADER_SIZE];
	put_header(h, type, (uint32_t) (alen + blen));
	queue_bytes(c, h, sizeof h, a, alen, b, blen);
}

static void
queue_started(struct supervisor *sv, struct client *c)
{
	uint32_t pids[2] = { htobe32((uint32_t) sv->init_pid), htobe32((uint32_t) sv->execd_pid) };
	queue_frame(c, F_STARTED, pids, sizeof pids, NULL, 0);
}

/* sinks false: an OUTPUT frame to every daemon that wants them. sinks true: to every sink that asked for
 * the stream, Docker's multiplexed frame (stream, 0, 0, 0, u32 length) or, with a tty, the bytes alone. */
static void
broadcast_output(struct supervisor *sv, bool sinks, int stream, const char *data, size_t n)
{
	unsigned char id = (unsigned char) stream;
	for (size_t i = 0; i < sv->nclients; i++) {
		struct client *c = &sv->clients[i];
		if ((c->sink != 0) != sinks)
			continue;
		if (c->sink == 0) {
			if (!c->muted)
				queue_frame(c, F_OUTPUT, &id, 1, data, n);
		} else if (c->sink & (stream == 1 ? ATTACH_STDOUT : ATTACH_STDERR)) {
			unsigned char h[8] = { id, 0, 0, 0 };
			uint32_t be = htobe32((uint32_t) n);
			memcpy(h + 4, &be, 4);
			queue_bytes(c, h, (c->sink & ATTACH_RAW) ? 0 : sizeof h, data, n, NULL, 0);
		}
	}
}

/* The entry of a line the stream ended without a newline. */
static void
flush_partial(struct buf *log, struct stream *st, const char *time)
{
	if (st->partial.len == 0)
		return;
	char tail[128];
	size_t tail_len = entry_tail(tail, sizeof tail, st->id, time);
	log_entry(log, st->partial.data + st->partial.off, st->partial.len, tail, tail_len);
	buf_consume(&st->partial, st->partial.len);
}

/* The writer's side: records to entries (the entries' buffer is the caller's, to write). */
static void
log_records(struct log_queue *q, struct buf *records, struct buf *entries)
{
	while (records->len) {
		struct log_record r;
		memcpy(&r, records->data + records->off, sizeof r);
		char time[64];
		memcpy(time, records->data + records->off + sizeof r, r.time_len);
		time[r.time_len] = '\0';
		const char *data = records->data + records->off + sizeof r + r.time_len;
		struct stream *st = &q->streams[r.stream_index];
		if (r.len)
			log_lines(entries, st, data, r.len, time);
		else
			flush_partial(entries, st, time);
		buf_consume(records, sizeof r + r.time_len + r.len);
	}
}

static bool
daemon_listening(const struct supervisor *sv)
{
	for (size_t i = 0; i < sv->nclients; i++)
		if (sv->clients[i].fd >= 0 && sv->clients[i].sink == 0 && !sv->clients[i].muted)
			return true;
	return false;
}

/* Attach sinks get the bytes first, so that their readers work on them while this writes the log. The log
 * comes before the daemons' OUTPUT: nothing is lost while no daemon is attached, and a daemon woken by
 * OUTPUT (logs -f) finds the bytes in the log. */
static void
handle_output(struct supervisor *sv, struct stream *st, const char *data, size_t n)
{
	char time[48];
	if (sv->log_out.fd >= 0)
		current_time(time, sizeof time);   /* the time the bytes were read */
	broadcast_output(sv, true, st->id, data, n);
	if (sv->log_out.fd >= 0) {
		if (!sv->log_queue.started && n >= BATCH_MIN)
			(void) log_queue_start(&sv->log_queue, &sv->log_out, sv->streams);
		if (sv->log_queue.started) {
			log_queue_push(&sv->log_queue, (int) (st - sv->streams), time, data, n);
		} else {
			log_lines(&sv->log, st, data, n, time);
			log_write(&sv->log_out, &sv->log);
		}
	}
	if (daemon_listening(sv))
		log_queue_drain(&sv->log_queue);   /* a daemon woken by OUTPUT finds the bytes in the file */
	broadcast_output(sv, false, st->id, data, n);
}

static void
close_stream(struct supervisor *sv, struct stream *st)
{
	close_fdp(&st->fd);
	if (sv->log_out.fd < 0)
		return;
	char time[48];
	current_time(time, sizeof time);
	if (sv->log_queue.started) {   /* the writer owns the partial line now */
		log_queue_push(&sv->log_queue, (int) (st - sv->streams), time, NULL, 0);
		return;
	}
	flush_partial(&sv->log, st, time);
	log_write(&sv->log_out, &sv->log);
	buf_free(&st->partial);
}

/* One read per wake-up keeps stdout and stderr fair; returns false when nothing more is there now.
 * Bulk output that drained the pipe rests there for BATCH_NS before the next read: otherwise each of the
 * producer's small writes costs a wake-up, a read, a log write and a frame here and in every reader (a
 * 280 MB stream came in 22 KB pieces); resting, it comes in pieces ten times larger. Small writes
 * (interactive output) never wait. */
static bool
read_stream(struct supervisor *sv, struct stream *st)
{
	ssize_t n = read(st->fd, sv->chunk, READ_CHUNK);
	if (n > 0) {
		handle_output(sv, st, sv->chunk, (size_t) n);
		if (n >= BATCH_MIN && n < READ_CHUNK / 2)
			st->rest_until = monotonic_ns() + BATCH_NS;
		return true;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	close_stream(sv, st);
	return false;
}

static void
close_stdin(struct supervisor *sv)
{
	close_fdp(&sv->stdin_fd);
	buf_free(&sv->stdin_pending);
}

static void
write_stdin(struct supervisor *sv)
{
	while (sv->stdin_fd >= 0 && sv->stdin_pending.len) {
		ssize_t n = write(sv->stdin_fd, sv->stdin_pending.data + sv->stdin_pending.off, sv->stdin_pending.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			close_stdin(sv);   /* EPIPE: the container closed its stdin */
			return;
		}
		buf_consume(&sv->stdin_pending, (size_t) n);
	}
	if (sv->stdin_close_requested)
		close_stdin(sv);
}

static void
handle_client_frame(struct supervisor *sv, struct client *c, uint16_t type, const char *p, uint32_t len)
{
	switch (type) {
	case F_HELLO:
		if (len == 4 && get_u32(p) == PROTOCOL_VERSION) {
			queue_started(sv, c);
			return;
		}
		execd_error_t err;
		fail_msg(&err, EPROTO, "hello: protocol version not supported (execd speaks %d)", PROTOCOL_VERSION);
		send_error(c->fd, &err);
		drop_client(c);
		return;
	case F_STDIN:
		if (sv->stdin_fd >= 0 && !sv->stdin_close_requested) {
			buf_append(&sv->stdin_pending, p, len);
			write_stdin(sv);
		}
		return;
	case F_STDIN_CLOSE:
		sv->stdin_close_requested = true;
		write_stdin(sv);
		return;
	case F_KILL:
		if (len == 4 && !sv->exited)
			(void) kill(sv->init_pid, (int) get_u32(p));
		return;
	case F_RESIZE:
		if (len == 4 && sv->console_fd >= 0) {
			struct winsize ws = { .ws_row = get_u16(p), .ws_col = get_u16(p + 2) };
			(void) ioctl(sv->console_fd, TIOCSWINSZ, &ws);   /* the kernel sends SIGWINCH */
		}
		return;
	case F_OUTPUT_MODE:
		if (len == 1)
			c->muted = p[0] == 0;
		return;
	default:
		drop_client(c);   /* a peer that speaks another protocol */
	}
}

static void handle_client_input(struct supervisor *sv, struct client *c);

static void
read_client(struct supervisor *sv, struct client *c)
{
	buf_reserve(&c->in, IO_CHUNK);
	ssize_t n = recv(c->fd, buf_end(&c->in), IO_CHUNK, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		drop_client(c);
		return;
	}
	c->in.len += (size_t) n;
	handle_client_input(sv, c);
}

/* Every whole frame in c's input buffer. */
static void
handle_client_input(struct supervisor *sv, struct client *c)
{
	while (c->fd >= 0 && c->in.len >= HEADER_SIZE) {
		const char *h = c->in.data + c->in.off;
		uint32_t len = get_u32(h);
		if (len > MAX_RECORD || h[6] || h[7]) {
			drop_client(c);
			return;
		}
		if (c->in.len < HEADER_SIZE + (size_t) len)
			return;
		handle_client_frame(sv, c, get_u16(h + 4), h + HEADER_SIZE, len);
		if (c->fd >= 0)
			buf_consume(&c->in, HEADER_SIZE + (size_t) len);
	}
}

static void
add_client(struct supervisor *sv, int fd)
{
	if (sv->nclients == MAX_CLIENTS) {
		close(fd);
		return;
	}
	sv->clients[sv->nclients++] = (struct client) { .fd = fd };
}

static void
accept_clients(struct supervisor *sv)
{
	for (;;) {
		int fd = accept4(sv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		add_client(sv, fd);
	}
}

static void
reap_children(struct supervisor *sv)
{
	struct signalfd_siginfo info;
	while (read(sv->signal_fd, &info, sizeof info) > 0)
		;
	int status;
	pid_t pid;
	/* as subreaper execd also inherits orphans when there is no pid namespace */
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (pid == sv->init_pid) {
			sv->exited = true;
			sv->wait_status = status;
			clock_gettime(CLOCK_REALTIME, &sv->finished_at);
		}
}

static bool
clients_congested(const struct supervisor *sv)
{
	for (size_t i = 0; i < sv->nclients; i++)
		if (sv->clients[i].out.len >= HIGH_WATER)
			return true;
	return false;
}

enum slot_kind { SLOT_SIGNAL, SLOT_LISTEN, SLOT_STREAM, SLOT_STDIN, SLOT_CLIENT };

struct poll_set {
	struct pollfd fds[4 + MAX_CLIENTS];
	enum slot_kind kind[4 + MAX_CLIENTS];
	size_t index[4 + MAX_CLIENTS];
	nfds_t n;
	int timeout_ms;   /* -1, or until a resting stream may be read again */
};

static void
poll_add(struct poll_set *ps, int fd, short events, enum slot_kind kind, size_t index)
{
	ps->fds[ps->n] = (struct pollfd) { .fd = fd, .events = events };
	ps->kind[ps->n] = kind;
	ps->index[ps->n] = index;
	ps->n++;
}

static void
build_poll_set(struct supervisor *sv, struct poll_set *ps)
{
	ps->n = 0;
	poll_add(ps, sv->signal_fd, POLLIN, SLOT_SIGNAL, 0);
	poll_add(ps, sv->listen_fd, POLLIN, SLOT_LISTEN, 0);
	/* backpressure: a slow daemon stops the container's pipes rather than growing memory */
	bool congested = clients_congested(sv);
	long long now = monotonic_ns();
	ps->timeout_ms = -1;
	for (size_t i = 0; i < 2; i++) {
		struct stream *st = &sv->streams[i];
		if (st->fd < 0 || congested)
			continue;
		if (st->rest_until > now) {   /* resting: wake up when the rest is over */
			int ms = (int) ((st->rest_until - now + 999999) / 1000000);
			ps->timeout_ms = ps->timeout_ms < 0 || ms < ps->timeout_ms ? ms : ps->timeout_ms;
			continue;
		}
		poll_add(ps, st->fd, POLLIN, SLOT_STREAM, i);
	}
	if (sv->stdin_fd >= 0 && sv->stdin_pending.len)
		poll_add(ps, sv->stdin_fd, POLLOUT, SLOT_STDIN, 0);
	bool stdin_full = sv->stdin_pending.len >= HIGH_WATER;
	for (size_t i = 0; i < sv->nclients; i++) {
		/* a sink is never read: what its peer sends (nothing, or a half-close) is not ours to act on */
		bool in = !stdin_full && sv->clients[i].sink == 0;
		short ev = (short) ((in ? POLLIN : 0) | (sv->clients[i].out.len ? POLLOUT : 0));
		poll_add(ps, sv->clients[i].fd, ev, SLOT_CLIENT, i);
	}
}

static void
dispatch(struct supervisor *sv, const struct poll_set *ps)
{
	for (nfds_t i = 0; i < ps->n; i++) {
		short re = ps->fds[i].revents;
		if (re == 0)
			continue;
		switch (ps->kind[i]) {
		case SLOT_SIGNAL:
			reap_children(sv);
			break;
		case SLOT_LISTEN:
			accept_clients(sv);
			break;
		case SLOT_STREAM:
			read_stream(sv, &sv->streams[ps->index[i]]);
			break;
		case SLOT_STDIN:
			if (re & (POLLERR | POLLHUP))
				close_stdin(sv);
			else
				write_stdin(sv);
			break;
		case SLOT_CLIENT: {
			struct client *c = &sv->clients[ps->index[i]];
			if (re & POLLOUT)
				flush_client(c);
			if (c->fd >= 0 && c->sink && (re & (POLLHUP | POLLERR)))
				drop_client(c);   /* the attached client is gone */
			else if (c->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR)))
				read_client(sv, c);
			break;
		}
		}
	}
	compact_clients(sv);
}

/* After init is gone every process of its pid namespace is gone: read what the pipes still hold. */
static void
drain_streams(struct supervisor *sv)
{
	for (size_t i = 0; i < 2; i++) {
		struct stream *st = &sv->streams[i];
		while (st->fd >= 0 && read_stream(sv, st))
			;
		if (st->fd >= 0)
			close_stream(sv, st);
	}
}

static int
record_exit(struct supervisor *sv, int *code, int *sig, execd_error_t *err)
{
	*sig = WIFSIGNALED(sv->wait_status) ? WTERMSIG(sv->wait_status) : 0;
	*code = *sig ? 128 + *sig : WEXITSTATUS(sv->wait_status);
	unsigned long long ns = (unsigned long long) sv->finished_at.tv_sec * 1000000000ULL
				+ (unsigned long long) sv->finished_at.tv_nsec;
	char sigtext[16] = "null", text[160];
	if (*sig)
		snprintf(sigtext, sizeof sigtext, "%d", *sig);
	int n = snprintf(text, sizeof text, "{\"exit_code\":%d,\"signal\":%s,\"finished_at_ns\":%llu,\"oom_killed\":false}\n",
			 *code, sigtext, ns);
	return write_file_atomic("exit", text, (size_t) n, err);
}

/* Until every backlog is sent; gives up after timeout_ms without progress (a peer that stopped reading). */
static void
flush_all_clients(struct supervisor *sv, int timeout_ms)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	size_t before = SIZE_MAX;
	for (;;) {
		size_t backlog = 0;
		for (size_t i = 0; i < sv->nclients; i++)
			backlog += sv->clients[i].fd >= 0 ? sv->clients[i].out.len : 0;
		if (backlog < before)
			clock_gettime(CLOCK_MONOTONIC, &start);
		before = backlog;
		struct pollfd fds[MAX_CLIENTS];
		nfds_t n = 0;
		for (size_t i = 0; i < sv->nclients; i++)
			if (sv->clients[i].fd >= 0 && sv->clients[i].out.len)
				fds[n++] = (struct pollfd) { .fd = sv->clients[i].fd, .events = POLLOUT };
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
		if (n == 0 || left <= 0 || poll(fds, n, (int) left) < 0)
			return;
		for (size_t i = 0; i < sv->nclients; i++)
			if (sv->clients[i].fd >= 0 && sv->clients[i].out.len)
				flush_client(&sv->clients[i]);
	}
}

static void
finish(struct supervisor *sv)
{
	execd_error_t err = { 0 };
	int code, sig;
	drain_streams(sv);
	log_queue_stop(&sv->log_queue);   /* the whole log is in the file before the exit is */
	for (size_t i = 0; i < 2; i++)
		buf_free(&sv->streams[i].partial);
	/* the file comes before the socket goes, so a reattach always finds one or the other */
	(void) record_exit(sv, &code, &sig, &err);
	(void) unlink(CONTROL_SOCKET);
	close_fdp(&sv->listen_fd);
	struct { int32_t code, sig; uint64_t ns; } __attribute__((packed)) payload = {
		(int32_t) htobe32((uint32_t) code), (int32_t) htobe32((uint32_t) sig),
		htobe64((uint64_t) sv->finished_at.tv_sec * 1000000000ULL + (uint64_t) sv->finished_at.tv_nsec),
	};
	for (size_t i = 0; i < sv->nclients; i++)
		if (sv->clients[i].sink == 0)
			queue_frame(&sv->clients[i], F_EXIT, &payload, sizeof payload, NULL, 0);
	flush_all_clients(sv, EXIT_FLUSH_MS);
	for (size_t i = 0; i < sv->nclients; i++)
		drop_client(&sv->clients[i]);
}

static void
supervise(struct supervisor *sv)
{
	struct poll_set ps;
	while (!sv->exited) {
		build_poll_set(sv, &ps);
		if (poll(ps.fds, ps.n, ps.timeout_ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		dispatch(sv, &ps);
	}
	finish(sv);
}

/* ------------------------------------------------------------------------------------------------ */
/* main                                                                                              */

/* Keep only the daemon's socket (as fd 3) and /dev/null stdio, then leave the daemon's session. */
static int
detach_from_daemon(int *sock, execd_error_t *err)
{
	if (*sock != 3) {
		if (dup3(*sock, 3, O_CLOEXEC) < 0)
			return fail(err, errno, "move daemon socket");
		close(*sock);
		*sock = 3;
	} else if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		return fail(err, errno, "set daemon socket close-on-exec");
	(void) close_range(4, ~0U, 0);
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		return fail(err, errno, "open /dev/null");
	for (int fd = 0; fd < 3; fd++)
		if (null != fd && dup2(null, fd) < 0)
			return fail(err, errno, "redirect stdio to /dev/null");
	if (null > 2)
		close(null);
	(void) setsid();   /* EPERM when the daemon already made us a session leader */
	pid_t pid = fork();
	if (pid < 0)
		return fail(err, errno, "fork");
	if (pid > 0)
		_exit(0);   /* the daemon reaps this one; execd is now reparented away from it */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return fail(err, errno, "set child subreaper");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return fail(err, errno, "ignore SIGPIPE");
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
	if (enter_state_dir(s, err) < 0 || open_log(s, &sv->log_out, err) < 0 || make_stdio_pipes(s, p, err) < 0)
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

static int
write_pid_file(pid_t pid, execd_error_t *err)
{
	char text[24];
	int n = snprintf(text, sizeof text, "%d\n", pid);
	return write_file_atomic("pid", text, (size_t) n, err);
}

static int
run(struct spec *s, int sock, struct buf *early, const int *attach_fds)
{
	execd_error_t err = { 0 };
	struct stdio_pipes pipes = { -1, -1, -1, -1, -1, -1, -1 };
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
	sv->streams[0] = (struct stream) { .fd = pipes.out_r, .id = 1 };
	sv->streams[1] = (struct stream) { .fd = pipes.err_r, .id = 2 };
	if (pipes.console >= 0 && use_console(sv, &pipes, s->open_stdin) < 0)
		return 1;
	if (fcntl(sock, F_SETFL, O_NONBLOCK) < 0)
		return 1;
	add_client(sv, sock);
	sv->clients[0].muted = s->mute_daemon;
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

/* `--seccomp-bpf`: a spec's seccomp records on stdin, the compiled filter on stdout. The daemon runs it once
 * per profile and sends the result with every start (spec key seccomp_bpf). */
static int
seccomp_bpf_main(void)
{
	execd_error_t err = { 0 };
	struct spec spec = { 0 };
	struct spec_reader rd = { .fd = 0 };
	__attribute__((cleanup(seccomp_releasep))) scmp_filter_ctx ctx = NULL;
	if (read_spec_records(&rd, &spec, &err) < 0 || !spec.sec.has_seccomp || build_seccomp(&spec.sec, &ctx, &err) < 0) {
		fprintf(stderr, "execd: %s\n", err.message[0] ? err.message : "no seccomp profile in the spec");
		return 1;
	}
	int r = seccomp_export_bpf(ctx, 1);
	if (r < 0) {
		fprintf(stderr, "execd: seccomp: export filter: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

/* `--init` (HostConfig.Init): execd bind-mounted at /sbin/docker-init runs as the container's PID 1 with
 * `docker-init -- CMD ARGS`, as tini does: it forks CMD, reaps every zombie, forwards the signals sent to
 * it (those a terminal sends reach CMD's process group directly) and exits as CMD did. */
static int
init_main(char **cmd)
{
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGILL); sigdelset(&all, SIGSEGV); sigdelset(&all, SIGBUS); sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGABRT); sigdelset(&all, SIGTRAP); sigdelset(&all, SIGSYS);
	sigprocmask(SIG_SETMASK, &all, &old);   /* blocked, not ignored: PID 1 still gets them */
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "[FATAL pyd-init] fork failed: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "[FATAL pyd-init] exec %s failed: %s\n", cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			if (info.si_code != SI_KERNEL)
				(void) kill(child, sig);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == child)
				return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
}

int
main(int argc, char **argv)
{
	execd_error_t err = { 0 };
	struct spec spec = { 0 };
	if (argc >= 3 && strcmp(argv[1], "--") == 0)
		return init_main(argv + 2);
	if (argc == 2 && strcmp(argv[1], "--seccomp-bpf") == 0)
		return seccomp_bpf_main();
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
	return run(&spec, sock, &rd.rest, rd.fds);
}
