/*
 * src/common/error.c: messages for ekg_err_t and the ekg_diag_t helper. Thread: any (no shared state).
 */
#include <stdarg.h>
#include <stdio.h>

#include "ekglue/error.h"

const char *ekg_strerror(ekg_err_t err)
{
    switch (err) {
    case EKG_OK:
        return "success";
#define EKG_ERR_CASE(name, msg)                                                                              \
    case EKG_##name:                                                                                         \
        return msg;
        EKG_ERRNO_MAP(EKG_ERR_CASE)
#undef EKG_ERR_CASE
    default:
        return "unknown error";
    }
}

ekg_err_t ekg_diag_set(ekg_diag_t *diag, ekg_err_t err, const char *fmt, ...)
{
    if (diag) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
        va_end(ap);
    }
    return err;
}
