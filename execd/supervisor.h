/*
 * The supervisor: execd's event loop while the container runs. It holds the container's stdio, writes
 * its output to attach sinks, then the json log, then OUTPUT frames to every daemon that wants them;
 * it delivers stdin, signals and resizes, accepts daemons that reattach on the control socket, and at
 * the exit records the status (EXIT_FILE) before it says EXIT and removes the socket.
 */
#ifndef EXECD_SUPERVISOR_H
#define EXECD_SUPERVISOR_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "jsonlog.h"
#include "logwriter.h"
#include "protocol.h"
#include "util.h"

enum {
	READ_CHUNK = 512 * 1024,   /* one read of an output pipe: one OUTPUT frame, so below MAX_RECORD */
	SINK_BUFFER = 4 << 20,     /* socket send buffer of an attach sink */
};

_Static_assert((int) READ_CHUNK < (int) MAX_RECORD, "an OUTPUT frame holds one read");

struct stream {
	int fd;
	struct log_stream log;
	long long rest_until; /* monotonic ns: bulk output rests in the pipe until then (see read_stream) */
};

struct client {
	int fd;
	struct buf in, out;
	int sink;     /* 0: a daemon speaking this protocol; else an attach sink (enum attach_flags) */
	bool muted;   /* a daemon that asked for no OUTPUT frames */
	bool starter; /* the daemon that sent the spec (it answers the waits while it lives) */
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


void add_client(struct supervisor *sv, int fd);

/* The answer to a HELLO: STARTED with the pids. */
void queue_started(struct supervisor *sv, struct client *c);

/* Every whole frame in c's input buffer. */
void handle_client_input(struct supervisor *sv, struct client *c);

/* Until the container's init exits; then the exit is recorded and told. */
void supervise(struct supervisor *sv);

#endif
