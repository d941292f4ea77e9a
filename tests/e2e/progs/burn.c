/*
 * burn.c - a CPU burner for the profiler tests: spends CPU in burn_a and
 * burn_b in a 3:1 ratio (by loop count), called through middle() from
 * main(), until killed. Built with frame pointers so stacks reach main.
 * With "sleep" as argument it instead waits in nanosleep inside
 * wait_here() (for the off-CPU profile); with "syscalls" it writes to
 * /dev/null in a loop inside spin_syscalls() (kernel frames).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile unsigned long sink;

__attribute__((noinline)) void burn_a(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		sink += i * 7;
}

__attribute__((noinline)) void burn_b(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		sink += i * 3;
}

__attribute__((noinline)) void middle(void)
{
	burn_a(3000000);
	burn_b(1000000);
}

/* libc's nanosleep keeps no frame pointer, so the frame-pointer walk
 * skips its direct caller: wait_here sleeps one call further away. */
__attribute__((noinline)) void do_sleep(void)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	sink++; /* not a tail call */
}

__attribute__((noinline)) void wait_here(void)
{
	do_sleep();
	sink++;
}

__attribute__((noinline)) void spin_syscalls(int fd)
{
	char b[64] = { 0 };

	for (int i = 0; i < 1000; i++)
		if (write(fd, b, sizeof(b)) < 0)
			return;
}

int main(int argc, char **argv)
{
	int fd;

	printf("ready\n");
	fflush(stdout);
	if (argc > 1 && !strcmp(argv[1], "sleep")) {
		for (;;)
			wait_here();
	}
	if (argc > 1 && !strcmp(argv[1], "syscalls")) {
		fd = open("/dev/null", O_WRONLY);
		for (;;)
			spin_syscalls(fd);
	}
	for (;;)
		middle();
}
