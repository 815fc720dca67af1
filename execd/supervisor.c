#define _GNU_SOURCE
#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "frames.h"
#include "statedir.h"

enum {
	HIGH_WATER = 1 << 20,      /* per-client backlog above which container pipes are not read */
	BATCH_MIN = 16 << 10,      /* a read this large is bulk output: the next one waits BATCH_NS */
	BATCH_NS = 1000000,        /* 1 ms: unnoticeable, and a 1 MiB pipe does not fill in it */
	EXIT_FLUSH_MS = 10000,     /* how long a client that stopped reading may delay execd's exit */
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

void
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
	broadcast_output(sv, true, st->log.id, data, n);
	if (sv->log_out.fd >= 0) {
		if (!sv->log_queue.started && n >= BATCH_MIN)
			(void) log_queue_start(&sv->log_queue, &sv->log_out, &sv->streams[0].log, &sv->streams[1].log);
		if (sv->log_queue.started) {
			log_queue_push(&sv->log_queue, (int) (st - sv->streams), time, data, n);
		} else {
			log_lines(&sv->log, &st->log, data, n, time);
			log_write(&sv->log_out, &sv->log);
		}
	}
	if (daemon_listening(sv))
		log_queue_drain(&sv->log_queue);   /* a daemon woken by OUTPUT finds the bytes in the file */
	broadcast_output(sv, false, st->log.id, data, n);
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
	flush_partial(&sv->log, &st->log, time);
	log_write(&sv->log_out, &sv->log);
	buf_free(&st->log.partial);
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
		error_msg(&err, EPROTO, "protocol version not supported (execd speaks %d)", PROTOCOL_VERSION);
		error_wrap(&err, "hello");
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

void
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

void
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
	return write_file_atomic(EXIT_FILE, text, (size_t) n, err);
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

/* The waits the starting daemon handed over, when that daemon is gone: their clients (a foreground
 * `docker run`) get the exit code instead of a cut connection. */
static void
answer_waits(struct supervisor *sv, int code)
{
	for (size_t i = 0; i < sv->nclients; i++)
		if (sv->clients[i].fd >= 0 && sv->clients[i].starter)
			return;
	char body[64], head[16];
	int n = snprintf(body, sizeof body, "{\"StatusCode\":%d,\"Error\":null}\n", code);
	int h = snprintf(head, sizeof head, "%x\r\n", (unsigned) n);
	for (size_t i = 0; i < sv->nclients; i++)
		if (sv->clients[i].fd >= 0 && (sv->clients[i].sink & ATTACH_WAIT))
			queue_bytes(&sv->clients[i], head, (size_t) h, body, (size_t) n, "\r\n0\r\n\r\n", 7);
}

static void
finish(struct supervisor *sv)
{
	execd_error_t err = { 0 };
	int code, sig;
	drain_streams(sv);
	log_queue_stop(&sv->log_queue);   /* the whole log is in the file before the exit is */
	for (size_t i = 0; i < 2; i++)
		buf_free(&sv->streams[i].log.partial);
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
	answer_waits(sv, code);
	flush_all_clients(sv, EXIT_FLUSH_MS);
	for (size_t i = 0; i < sv->nclients; i++)
		drop_client(&sv->clients[i]);
}

void
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
