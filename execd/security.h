/* What the container's process may do: the bounding set and capabilities, no_new_privs, seccomp.
 * The order is runc's: bounding set, seccomp (without no_new_privs it needs CAP_SYS_ADMIN, so before the
 * user switch), the user switch, capset and ambient; with no_new_privs the filter is the last step before
 * execve. */
#ifndef EXECD_SECURITY_H
#define EXECD_SECURITY_H

#include <seccomp.h>

#include "error.h"
#include "spec.h"

/* Before the user switch (rlimits, set by the caller, come first). */
int secure_before_user(const struct security *sec, execd_error_t *err);

/* After the user switch: the capability sets. */
int secure_after_user(const struct security *sec, execd_error_t *err);

/* The last step before execve. */
int secure_before_exec(const struct security *sec, execd_error_t *err);

/* The profile's rules as a libseccomp filter (the caller releases it, e.g. with seccomp_releasep). */
int build_seccomp(const struct security *sec, scmp_filter_ctx *out, execd_error_t *err);

void seccomp_releasep(scmp_filter_ctx *ctx);

#endif
