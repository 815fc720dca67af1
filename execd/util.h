/* Small helpers every part uses: cleanup attributes, allocation, byte buffers, string lists, I/O. */
#ifndef EXECD_UTIL_H
#define EXECD_UTIL_H

#include <endian.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

void close_fdp(int *fd);
void freep(void *p);

#define cleanup_fd __attribute__((cleanup(close_fdp)))
#define cleanup_free __attribute__((cleanup(freep)))

/* Allocation failure leaves a small helper nothing sensible to do: these exit with EX_OSERR. */
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);

struct buf {
	char *data;
	size_t off, len, cap;   /* live bytes are data[off, off+len) */
};

void buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_free(struct buf *b);

static inline char *
buf_end(struct buf *b)
{
	return b->data + b->off + b->len;
}

static inline void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

struct strv {
	char **v;       /* NULL-terminated */
	size_t n;
};

void strv_push(struct strv *s, char *item);

static inline uint32_t
get_u32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}

static inline uint16_t
get_u16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return be16toh(v);
}

int write_full(int fd, const void *p, size_t n);

/* One descriptor over a unix socket (SCM_RIGHTS) with one byte of data. */
int send_fd(int sock, int fd);
int recv_fd(int sock);

long long monotonic_ns(void);

#endif
