/* Message stamps and fd helpers shared by the mechanisms. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* Front of every message: 24 bytes.  The back 8 bytes repeat seq. */
struct stamp {
	uint64_t seq;
	uint32_t producer;
	uint32_t magic;
	uint64_t len;
};
_Static_assert(sizeof(struct stamp) == BENCH_STAMP_MIN, "stamp size");

#define STAMP_MAGIC 0x5354414du /* "MATS" */

void bench_stamp(void *buf, size_t len, unsigned producer, uint64_t seq)
{
	struct stamp s = { .seq = seq, .producer = producer, .magic = STAMP_MAGIC, .len = len };
	memcpy(buf, &s, sizeof s);
	if (len >= sizeof s + sizeof seq)
		memcpy((char *)buf + len - sizeof seq, &seq, sizeof seq);
}

int bench_check(const void *buf, size_t len, unsigned *producer, uint64_t *seq)
{
	struct stamp s;
	if (len < sizeof s)
		return -EBADMSG;
	memcpy(&s, buf, sizeof s);
	if (s.magic != STAMP_MAGIC || s.len != len)
		return -EBADMSG;
	if (len >= sizeof s + sizeof s.seq) {
		uint64_t tail;
		memcpy(&tail, (const char *)buf + len - sizeof tail, sizeof tail);
		if (tail != s.seq)
			return -EBADMSG;
	}
	*producer = s.producer;
	*seq = s.seq;
	return 0;
}

int bench_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bench_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
