#ifndef EXECD_LOGWRITER_H
#define EXECD_LOGWRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "jsonlog.h"
#include "util.h"

/* Bulk output is logged by a second thread, so that encoding the entries and the file system's work
 * (about a quarter of the time of a 280 MB stream) overlap with reading the pipes and feeding attach
 * sinks. The thread starts at the first bulk read; from then on the loop queues what it reads, as it
 * read it, and the thread owns the streams' partial lines. The queue is bounded (the
 * loop waits when the writer lags LOG_QUEUE_MAX behind). log_queue_drain() is for the points that need
 * the bytes in the file: OUTPUT to a daemon (logs -f reads the file), the exit. */


struct log_queue {
	pthread_mutex_t mu;
	pthread_cond_t changed;
	struct buf pending;   /* log_records for the writer */
	bool started, busy, stop;
	pthread_t thread;
	struct log_sink *sink;
	struct log_stream *streams[2];   /* stdout and stderr: the writer alone uses their `partial` */
};

/* Start the writer (signals blocked in it: they are the loop's); false if it cannot run. */
bool log_queue_start(struct log_queue *q, struct log_sink *sink, struct log_stream *out, struct log_stream *err);

/* Queue what stream index (0 stdout, 1 stderr) read at `time` (n 0: the stream ended). */
void log_queue_push(struct log_queue *q, int index, const char *time, const char *data, size_t n);

/* Until the writer has written everything queued. */
void log_queue_drain(struct log_queue *q);

void log_queue_stop(struct log_queue *q);

#endif
