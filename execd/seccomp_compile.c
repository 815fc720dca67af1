#define _GNU_SOURCE
#include "seccomp_compile.h"

#include <stdio.h>

#include "security.h"
#include "spec.h"

/* `--seccomp-bpf`: a spec's seccomp records on stdin, the compiled filter on stdout. The daemon runs it once
 * per profile and sends the result with every start (spec key seccomp_bpf). */
int
seccomp_compile_main(void)
{
	execd_error_t err = { 0 };
	struct spec spec = { 0 };
	struct spec_reader rd = { .fd = 0 };
	__attribute__((cleanup(seccomp_releasep))) scmp_filter_ctx ctx = NULL;
	if (read_spec_records(&rd, &spec, &err) < 0 || !spec.sec.has_seccomp || build_seccomp(&spec.sec, &ctx, &err) < 0) {
		fprintf(stderr, "execd: %s\n", err.message[0] ? err.message : "no seccomp profile in the spec");
		return 1;
	}
	int r = seccomp_export_bpf(ctx, 1);
	if (r < 0) {
		error_errno(&err, -r, "export filter");
		error_wrap(&err, "seccomp");
		fprintf(stderr, "execd: %s\n", err.message);
		return 1;
	}
	return 0;
}
