#define _GNU_SOURCE
#include "logwriter.h"

#include <signal.h>
#include <string.h>

enum { LOG_QUEUE_MAX = 4 << 20 };   /* log bytes the writer thread may lag behind before output waits */

/* The queue holds records, each followed by the time text (time_len bytes), then the output (len bytes). */
struct log_record {
	uint32_t len;          /* 0: the stream ended, its partial line goes out */
	uint8_t stream_index;  /* 0 stdout, 1 stderr */
	uint8_t time_len;
};

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
		struct log_stream *st = q->streams[r.stream_index];
		if (r.len)
			log_lines(entries, st, data, r.len, time);
		else
			flush_partial(entries, st, time);
		buf_consume(records, sizeof r + r.time_len + r.len);
	}
}

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

bool
log_queue_start(struct log_queue *q, struct log_sink *sink, struct log_stream *out, struct log_stream *err)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->changed, NULL);
	q->sink = sink;
	q->streams[0] = out;
	q->streams[1] = err;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	q->started = pthread_create(&q->thread, NULL, log_writer_main, q) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q->started;
}

void
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

void
log_queue_drain(struct log_queue *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->mu);
	while (q->pending.len || q->busy)
		pthread_cond_wait(&q->changed, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

void
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
