#define _GNU_SOURCE
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int
set_leaf(execd_error_t *err, int errnum, int exit_code, const char *context, const char *message)
{
	snprintf(err->step, sizeof err->step, "%s", context);
	snprintf(err->message, sizeof err->message, "%s", message);
	err->errnum = errnum;
	err->exit_code = exit_code;
	return -1;
}

int
error_errno(execd_error_t *err, int errnum, const char *fmt, ...)
{
	char context[sizeof err->step], message[sizeof err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(context, sizeof context, fmt, ap);
	va_end(ap);
	if (errnum)
		snprintf(message, sizeof message, "%s: %s", context, strerror(errnum));
	else
		snprintf(message, sizeof message, "%s", context);
	return set_leaf(err, errnum, 125, context, message);
}

int
error_system(execd_error_t *err, int errnum)
{
	return set_leaf(err, errnum, 125, "", strerror(errnum));
}

int
error_msg(execd_error_t *err, int errnum, const char *fmt, ...)
{
	char context[sizeof err->step];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(context, sizeof context, fmt, ap);
	va_end(ap);
	return set_leaf(err, errnum, 125, context, context);
}

int
error_exec(execd_error_t *err, int errnum, int exit_code, const char *fmt, ...)
{
	char message[sizeof err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	return set_leaf(err, errnum, exit_code, "exec", message);
}

/* out = a sep b, cut to fit (as snprintf would) */
static void
join(char *out, size_t cap, const char *a, const char *sep, const char *b)
{
	size_t n = 0;
	for (const char *part[3] = { a, sep, b }, **p = part; p < part + 3; p++) {
		size_t len = strnlen(*p, cap - 1 - n);
		memcpy(out + n, *p, len);
		n += len;
	}
	out[n] = '\0';
}

int
error_wrap(execd_error_t *err, const char *fmt, ...)
{
	char context[sizeof err->step], step[sizeof err->step], message[sizeof err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(context, sizeof context, fmt, ap);
	va_end(ap);
	join(step, sizeof step, context, err->step[0] ? ": " : "", err->step);
	join(message, sizeof message, context, ": ", err->message);
	memcpy(err->step, step, sizeof step);
	memcpy(err->message, message, sizeof message);
	return -1;
}

const char *
lower_strerror(int errnum, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(errnum));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] = (char) (buf[0] - 'A' + 'a');
	return buf;
}
