/*
 * src/common/strutil.h: small string helpers shared by the library (library-private). Thread: any.
 */
#ifndef EKG_COMMON_STRUTIL_H
#define EKG_COMMON_STRUTIL_H

/* A newly malloc'ed printf result (the caller frees it), or NULL on out of memory. */
char *ekg_strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
