/*
 * include/ekglue/log.h: structured log lines on stderr.
 *
 * One line per call: `ts=2026-11-26T15:00:00.123Z level=warn msg="..." key=value ...`. The message is
 * printf-formatted; callers put key=value pairs in it. Lines below the process-wide level are dropped.
 * Thread: any; a line is written with a single write(2), so lines from threads do not interleave.
 */
#ifndef EKGLUE_LOG_H
#define EKGLUE_LOG_H

typedef enum { EKG_LOG_DEBUG = 0, EKG_LOG_INFO, EKG_LOG_WARN, EKG_LOG_ERROR, EKG_LOG_OFF } ekg_log_level_t;

/* Sets the level; call before starting threads. Default: EKG_LOG_INFO. */
void ekg_log_set_level(ekg_log_level_t level);
/* Parses "debug|info|warn|error|off"; returns -1 if unknown. */
int ekg_log_parse_level(const char *name);
int ekg_log_enabled(ekg_log_level_t level);

void ekg_log(ekg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ekg_debug(...) ekg_log(EKG_LOG_DEBUG, __VA_ARGS__)
#define ekg_info(...)  ekg_log(EKG_LOG_INFO, __VA_ARGS__)
#define ekg_warn(...)  ekg_log(EKG_LOG_WARN, __VA_ARGS__)
#define ekg_error(...) ekg_log(EKG_LOG_ERROR, __VA_ARGS__)

#endif
