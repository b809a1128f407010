/* libFuzzer target: the snapshot loader must reject or accept any bytes
 * without a crash, a leak or an out-of-bounds access (built with ASan and
 * UBSan). The build defines FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which
 * makes the loader ignore the checksum so that the fuzzer reaches the
 * checks behind it. */
#include <stddef.h>
#include <stdint.h>

#include "model/snapfile.h"
#include "model/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot *s;
	struct stats_list l;
	char err[256];

	if (snapfile_decode(data, size, &s, err, sizeof(err)))
		return 0;
	/* what loads must also group: every index it holds is used here */
	if (!stats_compute(s, STATS_KEY_TRACEBACK, false, &l))
		stats_list_free(&l);
	if (!stats_compute(s, STATS_KEY_FILENAME, true, &l))
		stats_list_free(&l);
	snapshot_free(s);
	return 0;
}
