#define _GNU_SOURCE
#include "frames.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

void
put_header(unsigned char h[HEADER_SIZE], uint16_t type, uint32_t len)
{
	uint32_t be_len = htobe32(len);
	uint16_t be_type = htobe16(type);
	memcpy(h, &be_len, 4);
	memcpy(h + 4, &be_type, 2);
	h[6] = h[7] = 0;
}

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

int
read_record(struct spec_reader *rd, struct record *r, execd_error_t *err)
{
	if (reader_fill(rd, HEADER_SIZE) < 0)
		return error_system(err, errno);
	const unsigned char *h = (const unsigned char *) rd->rest.data + rd->rest.off;
	r->len = get_u32(h);
	r->type = get_u16(h + 4);
	if (h[6] || h[7])
		return error_msg(err, EPROTO, "reserved header bits set");
	if (r->len > MAX_RECORD)
		return error_msg(err, EMSGSIZE, "record of %u bytes is too large (max %d)", r->len, MAX_RECORD);
	if (reader_fill(rd, HEADER_SIZE + (size_t) r->len) < 0)
		return error_system(err, errno);
	r->payload = xrealloc(NULL, r->len + 1);
	memcpy(r->payload, rd->rest.data + rd->rest.off + HEADER_SIZE, r->len);
	r->payload[r->len] = '\0';
	buf_consume(&rd->rest, HEADER_SIZE + (size_t) r->len);
	return 0;
}

int
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

/* ERROR payload: i32 errno, u32 exit code, step NUL message */
static void
encode_error(const execd_error_t *err, struct buf *out)
{
	uint32_t head[2] = { htobe32((uint32_t) err->errnum), htobe32((uint32_t) err->exit_code) };
	buf_append(out, head, sizeof head);
	buf_append(out, err->step, strlen(err->step) + 1);
	buf_append(out, err->message, strlen(err->message));
}

void
send_error(int fd, const execd_error_t *err)
{
	struct buf b = { 0 };
	encode_error(err, &b);
	(void) send_frame(fd, F_ERROR, b.data + b.off, b.len, NULL, 0);
	buf_free(&b);
}
