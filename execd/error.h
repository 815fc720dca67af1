/*
 * Errors: a failing step fills an execd_error_t and returns -1; each layer above it that knows more wraps
 * it with its own context, so the message reads outermost first:
 *     mount /data: stat /nonexistent/source: No such file or directory
 * The message goes to the daemon in an ERROR frame (step and message), or to stderr.
 */
#ifndef EXECD_ERROR_H
#define EXECD_ERROR_H

#include <stddef.h>

typedef struct {
	int errnum;          /* errno of the failed step, 0 when none applies */
	int exit_code;       /* 125 setup failure, 126 cannot invoke, 127 not found */
	char step[160];      /* the chain of context without errno's text, e.g. "mount /data: stat /src" */
	char message[864];   /* the sentence for the user: the step and errno's text */
} execd_error_t;

/* A failed system call: the context from fmt, then errno's text (when errnum is not 0). Returns -1. */
__attribute__((format(printf, 3, 4))) int error_errno(execd_error_t *err, int errnum, const char *fmt, ...);

/* A failed system call that the callers name: the message is errno's text alone until wrapped. Returns -1. */
int error_system(execd_error_t *err, int errnum);

/* A failure whose text says it all (bad spec, bad frame): errno travels along but is not appended. */
__attribute__((format(printf, 3, 4))) int error_msg(execd_error_t *err, int errnum, const char *fmt, ...);

/* An exec failure in Docker's words, exactly as given (never wrapped: users see them as they are). */
__attribute__((format(printf, 4, 5))) int error_exec(execd_error_t *err, int errnum, int exit_code, const char *fmt, ...);

/* Puts the caller's context in front of the error's chain. Returns -1. */
__attribute__((format(printf, 2, 3))) int error_wrap(execd_error_t *err, const char *fmt, ...);

/* strerror as Go spells it (lower-case first letter), which Docker's exec messages use. */
const char *lower_strerror(int errnum, char *buf, size_t len);

#endif
