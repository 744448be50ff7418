// galaxies_ipc_copy: what it costs to move bytes from one process to another on this machine, in
// 64 KiB chunks, through a Unix stream socket (a worker's channel to its master today) or through
// a shared-memory ring of 1 MiB (the lever issue #8 names for that hop). Each side copies, as a
// link's writer and reader do; the ring's sides poll (sched_yield) where the socket's block.
// Prints the rate and the CPU time of both processes per KiB moved (bench/RESULTS.md).
// Usage: galaxies_ipc_copy unix|ring [MiB]   (default 8192)
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t chunk = 64 * 1024;
constexpr std::size_t ring_size = 1 << 20;

struct ring {
  alignas(64) std::atomic<std::uint64_t> head{0};  // bytes written, by the producer
  alignas(64) std::atomic<std::uint64_t> tail{0};  // bytes taken, by the consumer
  alignas(64) unsigned char data[ring_size];
};

double cpu_seconds(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void produce(int fd, ring* r, std::size_t total) {
  const std::vector<unsigned char> source(chunk, 0x5a);
  for (std::size_t sent = 0; sent < total; sent += chunk) {
    if (!r) {
      for (std::size_t done = 0; done < chunk;) {
        const ssize_t n = ::write(fd, source.data() + done, chunk - done);
        if (n <= 0) std::_Exit(1);
        done += static_cast<std::size_t>(n);
      }
      continue;
    }
    const std::uint64_t head = r->head.load(std::memory_order_relaxed);
    while (head + chunk - r->tail.load(std::memory_order_acquire) > ring_size) ::sched_yield();
    const std::size_t at = head % ring_size;
    const std::size_t first = std::min(chunk, ring_size - at);
    std::memcpy(r->data + at, source.data(), first);
    std::memcpy(r->data, source.data() + first, chunk - first);
    r->head.store(head + chunk, std::memory_order_release);
  }
}

// Returns a byte of what arrived, so that the copies cannot be optimised away.
unsigned consume(int fd, ring* r, std::size_t total) {
  std::vector<unsigned char> sink(chunk);
  unsigned seen = 0;
  for (std::size_t got = 0; got < total;) {
    std::size_t n = 0;
    if (!r) {
      const ssize_t read = ::read(fd, sink.data(), chunk);
      if (read <= 0) std::_Exit(1);
      n = static_cast<std::size_t>(read);
    } else {
      const std::uint64_t tail = r->tail.load(std::memory_order_relaxed);
      std::uint64_t head;
      while ((head = r->head.load(std::memory_order_acquire)) == tail) ::sched_yield();
      n = std::min<std::size_t>(head - tail, chunk);
      const std::size_t at = tail % ring_size;
      const std::size_t first = std::min(n, ring_size - at);
      std::memcpy(sink.data(), r->data + at, first);
      std::memcpy(sink.data() + first, r->data, n - first);
      r->tail.store(tail + n, std::memory_order_release);
    }
    got += n;
    seen ^= sink[n - 1];
  }
  return seen;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode != "unix" && mode != "ring") {
    std::fprintf(stderr, "usage: galaxies_ipc_copy unix|ring [MiB]\n");
    return 2;
  }
  const std::size_t total = std::size_t(argc > 2 ? std::atoll(argv[2]) : 8192) << 20;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return 1;
  ring* r = nullptr;
  if (mode == "ring") {
    void* shared =
        ::mmap(nullptr, sizeof(ring), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 1;
    r = new (shared) ring();
  }
  const auto start = std::chrono::steady_clock::now();
  const pid_t producer = ::fork();
  if (producer == 0) {
    produce(pair[0], r, total);
    std::_Exit(0);
  }
  const unsigned seen = consume(pair[1], r, total);
  int status = 0;
  ::waitpid(producer, &status, 0);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN);
  std::printf("%s: %.2f GB/s, %.1f ns of CPU per KiB (both processes), %.2f s (%u)\n",
              std::string(mode).c_str(), total / wall / 1e9, cpu * 1e9 / (total / 1024.0), wall,
              seen);
  return status == 0 ? 0 : 1;
}
