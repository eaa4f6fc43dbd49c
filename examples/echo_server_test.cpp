// echo_server_test.cpp -- runs examples/echo_server and checks its idle
// timeouts from the outside, over 127.0.0.1 only.
//
//   echo_server_test PATH/TO/echo_server
//
// Starts the server with a 150 ms idle timeout at hz 1000 (1 tick = 1 ms),
// then, concurrently:
//   - idle clients send one line, read the echo, and go quiet: each must see
//     the server close the connection no earlier than the timeout after it
//     sent the line, and within the timeout plus one tick after the echo
//     came back -- plus a fixed allowance for what the measurement itself
//     adds (waking the server's loop, the FIN crossing loopback, waking this
//     thread);
//   - a silent client connects and never sends: the same bounds, measured
//     from the connect;
//   - chatty clients send a line every 50 ms for 600 ms (four timeouts): the
//     server must echo everything and not close them; then they go quiet
//     and are closed like the others.
// Then SIGTERM: the server must exit 0.  The whole test is bounded (alarm).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;

constexpr int kIdleMs = 150;
constexpr int kHz = 1000;
constexpr double kTickMs = 1000.0 / kHz;
// What the measurement adds on top of the server's own timing (see above).
// On an idle machine the overshoot is well under 1 ms; this allows for a
// loaded CI machine (2 cores shared with parallel builds).
constexpr double kAllowanceMs = 50.0;
constexpr int kIdleClients = 6;
constexpr int kChattyClients = 2;

std::mutex out_mutex;
std::atomic<int> failures{0};

template <class... A>
void say(const char *fmt, A... a) {
  std::lock_guard<std::mutex> lk(out_mutex);
  std::printf(fmt, a...);
  std::fflush(stdout);
}

template <class... A>
void fail(const char *fmt, A... a) {
  ++failures;
  std::lock_guard<std::mutex> lk(out_mutex);
  std::printf("FAILED: ");
  std::printf(fmt, a...);
  std::fflush(stdout);
}

int port;

int connect_loopback() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    perror("connect 127.0.0.1");
    std::exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Sends a line and reads its echo; false on any mismatch or EOF.
bool ping(int fd, const std::string &line) {
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return false;
  std::string got;
  char buf[256];
  while (got.size() < line.size()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return false;
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
  }
  return got == line;
}

// Waits for the server to close fd; returns when it saw EOF, or a time
// point of zero if it did not within `limit`.
Clock::time_point wait_eof(int fd, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return {};
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, static_cast<int>(left) + 1) != 1) continue;
    char buf[64];
    const ssize_t n = read(fd, buf, sizeof buf);
    const auto t = Clock::now();
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return t;
    if (n > 0) return {};  // unexpected data
  }
}

struct Overshoot {
  std::mutex m;
  std::vector<double> values;  // closed at (idle + x) ms
  void add(double x) {
    std::lock_guard<std::mutex> lk(m);
    values.push_back(x);
  }
} overshoot;

// Checks the close.  The server reset the client's timer after `sent` (the
// client sent its last line, or started connecting) and before `last` (the
// echo came back, or connect returned): so it must close no earlier than the
// timeout after `sent`, and within the timeout plus one tick (plus the
// allowance) after `last`.
void check_close(const char *who, int i, Clock::time_point sent, Clock::time_point last,
                 Clock::time_point eof) {
  if (eof == Clock::time_point{}) {
    fail("%s %d: not closed within %d ms of going idle\n", who, i, kIdleMs + 2000);
    return;
  }
  const double idle = ms(eof - last).count();
  overshoot.add(idle - kIdleMs);
  say("%s %d: closed after %.2f ms idle (timeout %d ms, 1 tick = %.0f ms)\n", who, i, idle, kIdleMs, kTickMs);
  if (ms(eof - sent).count() < kIdleMs)
    fail("%s %d: closed early, %.2f ms after its last send < %d ms\n", who, i, ms(eof - sent).count(),
         kIdleMs);
  if (idle > kIdleMs + kTickMs + kAllowanceMs)
    fail("%s %d: closed late, after %.2f ms > %d ms + 1 tick + %.0f ms allowance\n", who, i, idle, kIdleMs,
         kAllowanceMs);
}

void idle_client(int i) {
  const int fd = connect_loopback();
  const auto sent = Clock::now();
  if (!ping(fd, "idle client " + std::to_string(i) + "\n")) fail("idle client %d: bad echo\n", i);
  const auto last = Clock::now();
  check_close("idle client", i, sent, last, wait_eof(fd, std::chrono::milliseconds(kIdleMs + 2000)));
  close(fd);
}

void silent_client() {
  const auto sent = Clock::now();
  const int fd = connect_loopback();
  const auto connected = Clock::now();
  check_close("silent client", 0, sent, connected, wait_eof(fd, std::chrono::milliseconds(kIdleMs + 2000)));
  close(fd);
}

void chatty_client(int i) {
  const int fd = connect_loopback();
  const auto start = Clock::now();
  auto sent = start, last = start;  // the last line went out / came back
  int n = 0;
  while (last - start < std::chrono::milliseconds(4 * kIdleMs)) {
    if (n > 0) std::this_thread::sleep_for(std::chrono::milliseconds(kIdleMs / 3));
    sent = Clock::now();
    if (!ping(fd, "chatty " + std::to_string(i) + " line " + std::to_string(n++) + "\n")) {
      fail("chatty client %d: closed or bad echo at line %d, %.1f ms after connecting\n", i, n,
           ms(Clock::now() - start).count());
      close(fd);
      return;
    }
    last = Clock::now();
  }
  say("chatty client %d: %d lines over %.0f ms, all echoed, never closed\n", i, n, ms(last - start).count());
  check_close("chatty client", i, sent, last, wait_eof(fd, std::chrono::milliseconds(kIdleMs + 2000)));
  close(fd);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: echo_server_test PATH/TO/echo_server\n");
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  alarm(60);  // the whole test, whatever happens

  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return 1;
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");  // and never kill(-1, ...) below
    return 1;
  }
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    const std::string idle = std::to_string(kIdleMs), hz = std::to_string(kHz);
    execl(argv[1], argv[1], "--port", "0", "--idle-ms", idle.c_str(), "--hz", hz.c_str(), "--max-seconds",
          "50", static_cast<char *>(nullptr));
    std::perror("exec echo_server");
    _exit(127);
  }
  close(out[1]);
  FILE *server_out = fdopen(out[0], "r");
  char first[256];
  if (std::fgets(first, sizeof first, server_out) == nullptr ||
      std::sscanf(first, "listening on 127.0.0.1:%d", &port) != 1) {
    std::fprintf(stderr, "echo_server did not say where it listens\n");
    kill(pid, SIGKILL);
    return 1;
  }
  std::printf("server: %s", first);
  // Drain the server's log in the background (it must never block on us).
  std::string log;
  std::thread drain([&] {
    char line[512];
    while (std::fgets(line, sizeof line, server_out) != nullptr) log += line;
  });

  std::vector<std::thread> clients;
  for (int i = 0; i < kIdleClients; ++i) clients.emplace_back(idle_client, i);
  clients.emplace_back(silent_client);
  for (int i = 0; i < kChattyClients; ++i) clients.emplace_back(chatty_client, i);
  for (std::thread &t : clients) t.join();

  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  drain.join();
  std::printf("server log:\n%s", log.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("server exit status 0x%x\n", status);

  std::sort(overshoot.values.begin(), overshoot.values.end());
  if (!overshoot.values.empty())
    std::printf("closed at timeout + %.2f ms (min) / %.2f ms (median) / %.2f ms (max); 1 tick = %.0f ms\n",
                overshoot.values.front(), overshoot.values[overshoot.values.size() / 2],
                overshoot.values.back(), kTickMs);
  const int want = kIdleClients + 1 + kChattyClients;
  if (static_cast<int>(overshoot.values.size()) != want)
    fail("%zu of %d clients were closed\n", overshoot.values.size(), want);
  if (failures.load() != 0) {
    std::printf("%d failure(s)\n", failures.load());
    return 1;
  }
  std::printf("done\n");
  return 0;
}
