/*
 * log.h - leveled logging to stderr, one line per message.
 *
 * The agent runs in the foreground (a terminal, systemd, a container); its
 * log is stderr with a level tag and, at debug level, nothing more clever.
 */
#ifndef KS_LOG_H
#define KS_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_level;

/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
