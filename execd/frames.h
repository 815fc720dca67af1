/* Frames on the daemon's connection (protocol.h): the header, blocking reads of the spec phase, sends. */
#ifndef EXECD_FRAMES_H
#define EXECD_FRAMES_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "protocol.h"
#include "util.h"

enum { IO_CHUNK = 256 * 1024 };   /* one read of a client socket */

void put_header(unsigned char h[HEADER_SIZE], uint16_t type, uint32_t len);

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

/* Blocking read of one frame; used only in the spec phase, before the event loop. */
int read_record(struct spec_reader *rd, struct record *r, execd_error_t *err);

/* Blocking write of one frame made of two payload parts. */
int send_frame(int fd, uint16_t type, const void *a, size_t alen, const void *b, size_t blen);

/* An ERROR frame; a peer that is gone is not an error of ours. */
void send_error(int fd, const execd_error_t *err);

#endif
