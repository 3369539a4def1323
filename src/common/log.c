/*
 * src/common/log.c: the logger behind include/ekglue/log.h. Thread: any. The level is set once before threads
 * start and only read afterwards; each line goes out in one write(2).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekglue/log.h"

static ekg_log_level_t current_level = EKG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void ekg_log_set_level(ekg_log_level_t level)
{
    current_level = level;
}

int ekg_log_parse_level(const char *name)
{
    for (int i = 0; i <= EKG_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int ekg_log_enabled(ekg_log_level_t level)
{
    return level >= current_level && level < EKG_LOG_OFF;
}

void ekg_log(ekg_log_level_t level, const char *fmt, ...)
{
    if (!ekg_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    /* The message is quoted; quotes and newlines inside it are replaced so that a line stays one line. */
    char msg[1800];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
        else if (*p == '\n')
            *p = ' ';
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s\"\n", msg);
    if (n > (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 1, line[n - 1] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
