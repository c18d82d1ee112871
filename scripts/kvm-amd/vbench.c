/*
 * vbench: the I/O measurements of the kvm-amd harness's virtio-bench step, run inside the
 * nested Linux guest (scripts/kvm-amd/virtio-init.sh). The harness builds it with
 * `cc -static` into the guest's initramfs: busybox's dd has O_DIRECT but no clock, and
 * nothing in busybox does random reads or counts a TCP stream's bytes at speed.
 *
 *   vbench blk DEVICE SECONDS      sequential 4 KiB and 1 MiB writes, then reads, then
 *                                  4 KiB random reads, all O_DIRECT, each for SECONDS
 *   vbench recv PORT               accepts one TCP connection and reads it to its end
 *   vbench send HOST PORT SECONDS  connects (retrying while refused, up to a minute),
 *                                  sends zeros for SECONDS, then waits until the receiver
 *                                  has read all of it (its close): the guest powers off
 *                                  next, and data still in flight would be lost with it
 *
 * Every result is one line, "vbench: NAME VALUE UNIT (detail)", which the harness passes
 * on (scripts/kvm-amd/virtio-run.sh) and report.py tabulates. Runs are bounded by time,
 * not size, so one invocation takes the same time whatever the emulated machine's speed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NET_CHUNK (64 * 1024)
/* A peer silent this long has gone: fail rather than hang the VM. */
#define NET_TIMEOUT_SECONDS 60

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "vbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_timeouts(int socket_fd)
{
	struct timeval timeout = { .tv_sec = NET_TIMEOUT_SECONDS };

	if (setsockopt(socket_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) ||
	    setsockopt(socket_fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout))
		die("setsockopt");
}

/* read_to_end: reads SOCKET_FD until its peer closes; the bytes read. */
static unsigned long long read_to_end(int socket_fd)
{
	static char buffer[NET_CHUNK];
	unsigned long long bytes = 0;

	for (;;) {
		ssize_t got = read(socket_fd, buffer, sizeof buffer);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			die("read");
		if (got == 0)
			return bytes;
		bytes += got;
	}
}

/* A small xorshift generator: the random-read offsets need no quality, only spread. */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* One block measurement: BLOCK-byte transfers for SECONDS, sequential from offset 0
 * (wrapping at the device's end) or at random BLOCK-aligned offsets. */
static void blk_run(int fd, off_t size, const char *name, size_t block, int write_it,
		    int random_offsets, double seconds, char *buffer)
{
	uint64_t state = 0x9e3779b97f4a7c15ull, ops = 0;
	off_t blocks = size / block, offset = 0;
	double start = now(), elapsed;

	do {
		if (random_offsets)
			offset = (off_t)(next_random(&state) % blocks) * block;
		else if (offset + (off_t)block > size)
			offset = 0;
		ssize_t done = write_it ? pwrite(fd, buffer, block, offset)
					: pread(fd, buffer, block, offset);
		if (done != (ssize_t)block)
			die(write_it ? "pwrite" : "pread");
		offset += block;
		ops++;
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("vbench: %s %.2f MB/s (%llu x %zu bytes in %.2f s, %.0f IOPS)\n", name,
	       ops * block / elapsed / 1e6, (unsigned long long)ops, block, elapsed, ops / elapsed);
	fflush(stdout);
}

static int blk(const char *device, double seconds)
{
	const size_t big = 1024 * 1024, small = 4096;
	char *buffer;
	int fd = open(device, O_RDWR | O_DIRECT);

	if (fd < 0)
		die(device);
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)big)
		die("the device is smaller than 1 MiB");
	if (posix_memalign((void **)&buffer, 4096, big))
		die("posix_memalign");
	memset(buffer, 0x5a, big);
	blk_run(fd, size, "blk-seq-write-4k", small, 1, 0, seconds, buffer);
	blk_run(fd, size, "blk-seq-write-1m", big, 1, 0, seconds, buffer);
	if (fsync(fd))
		die("fsync");
	blk_run(fd, size, "blk-seq-read-4k", small, 0, 0, seconds, buffer);
	blk_run(fd, size, "blk-seq-read-1m", big, 0, 0, seconds, buffer);
	blk_run(fd, size, "blk-rand-read-4k", small, 0, 1, seconds, buffer);
	close(fd);
	return 0;
}

static int recv_stream(int port)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, listener = socket(AF_INET, SOCK_STREAM, 0);

	if (listener < 0)
		die("socket");
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1))
		die("bind/listen");
	int connection = accept(listener, NULL, NULL);
	if (connection < 0)
		die("accept");
	set_timeouts(connection);
	double start = now();
	unsigned long long bytes = read_to_end(connection);
	double elapsed = now() - start;
	close(connection);
	printf("vbench: net-tcp-recv %.2f MB/s (%llu bytes in %.2f s)\n", bytes / elapsed / 1e6,
	       bytes, elapsed);
	return 0;
}

static int send_stream(const char *host, int port, double seconds)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
	static char buffer[NET_CHUNK];
	unsigned long long bytes = 0;
	int connection = -1;

	if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
		fprintf(stderr, "vbench: %s is not an IPv4 address\n", host);
		return 2;
	}
	/* The receiver may not listen yet: it boots beside us. */
	for (int attempt = 0; connection < 0; attempt++) {
		connection = socket(AF_INET, SOCK_STREAM, 0);
		if (connection < 0)
			die("socket");
		if (connect(connection, (struct sockaddr *)&address, sizeof address) == 0)
			break;
		if (attempt >= 120)
			die("connect");
		close(connection);
		connection = -1;
		usleep(500 * 1000);
	}
	set_timeouts(connection);
	double start = now();
	while (now() - start < seconds) {
		ssize_t sent = write(connection, buffer, sizeof buffer);
		if (sent < 0 && errno != EINTR)
			die("write");
		if (sent > 0)
			bytes += sent;
	}
	/* Delivered when the receiver, having read our end, closes its side. */
	if (shutdown(connection, SHUT_WR))
		die("shutdown");
	read_to_end(connection);
	double elapsed = now() - start;
	close(connection);
	printf("vbench: net-tcp-send %.2f MB/s (%llu bytes in %.2f s)\n", bytes / elapsed / 1e6,
	       bytes, elapsed);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "blk"))
		return blk(argv[2], atof(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "recv"))
		return recv_stream(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "send"))
		return send_stream(argv[2], atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: vbench blk DEVICE SECONDS | recv PORT | send HOST PORT SECONDS\n");
	return 2;
}
