#define _GNU_SOURCE
#include "jsonlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

int
open_log(const struct spec *s, struct log_sink *out, execd_error_t *err)
{
	*out = (struct log_sink) { .fd = -1, .path = s->log_path, .max_size = s->log_max_size,
				   .max_file = s->log_max_file ? s->log_max_file : 1 };
	if (s->log_path == NULL)
		return 0;
	int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return error_errno(err, errno, "open log file %s", s->log_path);
	struct stat st;
	if (fstat(fd, &st) == 0)
		out->size = (unsigned long) st.st_size;
	out->fd = fd;
	return 0;
}

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
void
log_lines(struct buf *log, struct log_stream *st, const char *data, size_t n, const char *time)
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

void
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
void
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

void
flush_partial(struct buf *log, struct log_stream *st, const char *time)
{
	if (st->partial.len == 0)
		return;
	char tail[128];
	size_t tail_len = entry_tail(tail, sizeof tail, st->id, time);
	log_entry(log, st->partial.data + st->partial.off, st->partial.len, tail, tail_len);
	buf_consume(&st->partial, st->partial.len);
}
