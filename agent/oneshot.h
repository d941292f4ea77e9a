/*
 * oneshot.h - `katascope profile`: a one-shot profile of one process for a
 * person at a shell, written to a file.
 */
#ifndef KS_ONESHOT_H
#define KS_ONESHOT_H

int profile_main(int argc, char **argv);

#endif
