/* Version and error descriptions. */
#include <string.h>

#include "internal.h"

IPCX_API const char *ipcx_version(void)
{
	return IPCX_VERSION_STRING;
}

IPCX_API const char *ipcx_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case EPROTO:
		return "not an ipcx object (bad magic)";
	case EPROTONOSUPPORT:
		return "ipcx object has an ABI version this library cannot read";
	case EMEDIUMTYPE:
		return "ipcx object is of another kind";
	case EBADMSG:
		return "ipcx object or message is corrupted";
	case EPIPE:
		return "peer closed or died";
	case EOWNERDEAD:
		return "lock holder died; caller now holds the lock and must repair state";
	case ENOTRECOVERABLE:
		return "lock state is not recoverable";
	case EMSGSIZE:
		return "message larger than the object accepts";
	case EAGAIN:
		return "would block (non-blocking) or not ready yet";
	case ETIMEDOUT:
		return "deadline expired";
	default: {
		/* strerrordesc_np is thread-safe and returns static text */
		const char *s = strerrordesc_np(err);
		return s ? s : "unknown error";
	}
	}
}
