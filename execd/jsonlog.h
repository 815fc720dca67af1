/* Docker's json-file log: entries {"log":"...","stream":"stdout","time":"RFC3339Nano"} one per line of
 * output (a line longer than LOG_LINE_MAX in pieces), escaped as json-file does, and dockerd's rotation. */
#ifndef EXECD_JSONLOG_H
#define EXECD_JSONLOG_H

#include <stddef.h>

#include "error.h"
#include "spec.h"
#include "util.h"

enum { LOG_LINE_MAX = 16 * 1024 };   /* Docker splits longer lines into partial entries of this size */

/* The json-file log being written: its fd keeps its number over rotations (dup3), so holders of it stay valid. */
struct log_sink {
	int fd;
	const char *path;
	unsigned long size, max_size, max_file;
};

/* The log's side of one output stream. */
struct log_stream {
	int id;               /* 1 stdout, 2 stderr */
	struct buf partial;   /* bytes of a line not yet ended by a newline */
};

/* The spec's log (fd -1 when it has none). */
int open_log(const struct spec *s, struct log_sink *out, execd_error_t *err);

/* The current time in Go's RFC3339Nano, as the entries carry it. */
void current_time(char *out, size_t len);

/* Appends to log the entries of n bytes the stream read at `time`; an unended line stays in st->partial. */
void log_lines(struct buf *log, struct log_stream *st, const char *data, size_t n, const char *time);

/* The entry of a line the stream ended without a newline. */
void flush_partial(struct buf *log, struct log_stream *st, const char *time);

/* Writes (and consumes) the whole entries in log, rotating at max-size; never fails the container. */
void log_write(struct log_sink *l, struct buf *log);

#endif
