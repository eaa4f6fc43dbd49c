// peers_main.cpp -- the peer comparison driver: one program, one adapter per
// library, identical workloads (workloads.h).
//
//   callout-peers list
//   callout-peers one --lib L --workload W1|W2|W3|W3rt|W4 --n N [--seed S] [--cpu C]
//       one measurement in this process, pinned to CPU C; prints one JSON line
//   callout-peers all --out FILE [--reps R] [--sizes 1000,100000,1000000]
//                     [--big 10000000] [--w4-n 100000] [--cpu C] [--libs a,b]
//                     [--workloads W1,W2,W3,W3rt] [--log FILE]
//       every measurement, each in a fresh child process (a clean heap, a
//       fresh DPDK EAL, libevent's threading switch per configuration),
//       repetitions outermost so that a burst of noise on this shared
//       machine hits every library alike; the library order rotates from
//       one repetition to the next.  Appends one JSON line per measurement
//       to FILE.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "workloads.h"

namespace peers {

namespace {
RunArgs g_args;

std::vector<Lib> all_libs() {
  std::vector<Lib> libs;
  // A peer whose package was not found at configure time is left out (and
  // the report says so); CMakeLists.txt defines the HAVE_ macros.
  register_callout(libs);
  register_baselines(libs);
#ifdef CALLOUT_BENCH_HAVE_LIBEVENT
  register_libevent(libs);
#endif
#ifdef CALLOUT_BENCH_HAVE_LIBUV
  register_libuv(libs);
#endif
#ifdef CALLOUT_BENCH_HAVE_ASIO
  register_asio(libs);
#endif
#ifdef CALLOUT_BENCH_HAVE_DPDK
  register_dpdk(libs);
#endif
  return libs;
}

std::string json_escape(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o += ' ';
    } else {
      o += c;
    }
  }
  return o;
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

const RunArgs &current_args() { return g_args; }

void print_result(const RunArgs &a, const Result &r) {
  std::printf("{\"lib\":\"%s\",\"workload\":\"%s\",\"n\":%llu,\"ok\":%s", a.lib.c_str(), a.workload.c_str(),
              static_cast<unsigned long long>(a.n), r.ok ? "true" : "false");
  if (!r.ok) std::printf(",\"error\":\"%s\"", json_escape(r.error).c_str());
  auto field = [](const char *name, double v) {
    if (v >= 0) std::printf(",\"%s\":%.4f", name, v);
  };
  field("arm_ns", r.arm_ns);
  field("cancel_ns", r.cancel_ns);
  field("rearm_ns", r.rearm_ns);
  field("fire_ns", r.fire_ns);
  field("fire_rt_ns", r.fire_rt_ns);
  field("rearms", r.rearms);
  field("bytes_per_timer", r.bytes_per_timer);
  field("allocs_arm", r.allocs_arm);
  field("allocs_cancel", r.allocs_cancel);
  field("allocs_rearm", r.allocs_rearm);
  field("allocs_fire", r.allocs_fire);
  std::printf("}\n");
  std::fflush(stdout);
}

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: callout-peers list\n"
               "       callout-peers one --lib L --workload W1|W2|W3|W3rt|W4 --n N [--seed S] [--cpu C]\n"
               "       callout-peers all --out FILE [--reps R] [--sizes a,b,c] [--big N] [--w4-n N]\n"
               "                         [--cpu C] [--libs a,b] [--workloads W1,W2,W3,W3rt] [--log FILE]\n");
  return 2;
}

int cmd_one(const std::map<std::string, std::string> &opt) {
  auto get = [&](const char *k, const char *def) {
    auto it = opt.find(k);
    return it == opt.end() ? std::string(def) : it->second;
  };
  g_args.lib = get("lib", "");
  g_args.workload = get("workload", "W1");
  g_args.n = std::stoull(get("n", "1000"));
  g_args.seed = std::stoull(get("seed", "42"));
  g_args.cpu = std::stoi(get("cpu", "0"));
  // Pin before any library starts a thread: they inherit the mask.
  if (!bench::pin_to_cpu(g_args.cpu))
    std::fprintf(stderr, "callout-peers: cannot pin to CPU %d\n", g_args.cpu);
  alarm(900);  // a wedged library must not hang the whole run
  for (const Lib &l : all_libs()) {
    if (g_args.lib == l.name) {
      print_result(g_args, l.run(g_args));
      // Skip destructors and library teardown: the process is done.
      std::fflush(nullptr);
      _exit(0);
    }
  }
  std::fprintf(stderr, "callout-peers: unknown library %s\n", g_args.lib.c_str());
  return 2;
}

// Runs `self one ...` in a child; returns its stdout (one JSON line), or an
// error line made up here if it crashed.
std::string spawn(const std::string &self, const std::vector<std::string> &argv_s, int log_fd,
                  const RunArgs &a) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    if (log_fd >= 0) dup2(log_fd, 2);
    close(fds[0]);
    close(fds[1]);
    std::vector<char *> argv;
    for (auto &s : argv_s) argv.push_back(const_cast<char *>(s.c_str()));
    argv.push_back(nullptr);
    execv(self.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t k = read(fds[0], buf, sizeof buf);
    if (k > 0) {
      out.append(buf, static_cast<std::size_t>(k));
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!exited_ok || out.find('{') == std::string::npos) {
    std::ostringstream e;
    e << "{\"lib\":\"" << a.lib << "\",\"workload\":\"" << a.workload << "\",\"n\":" << a.n
      << ",\"ok\":false,\"error\":\"child ";
    if (WIFSIGNALED(status))
      e << "killed by signal " << WTERMSIG(status);
    else
      e << "exited with status " << WEXITSTATUS(status);
    e << "\"}\n";
    return e.str();
  }
  return out.substr(out.find('{'));
}

int cmd_all(const std::map<std::string, std::string> &opt) {
  auto get = [&](const char *k, const char *def) {
    auto it = opt.find(k);
    return it == opt.end() ? std::string(def) : it->second;
  };
  const std::string out_path = get("out", "");
  if (out_path.empty()) return usage();
  const int reps = std::stoi(get("reps", "5"));
  std::vector<std::uint64_t> sizes;
  for (auto &s : split(get("sizes", "1000,100000,1000000"))) sizes.push_back(std::stoull(s));
  const std::uint64_t big = std::stoull(get("big", "0"));
  if (big) sizes.push_back(big);
  const std::uint64_t w4n = std::stoull(get("w4-n", "100000"));
  const std::string cpu = get("cpu", "0");
  const std::vector<std::string> workloads = split(get("workloads", "W1,W2,W3,W3rt"));
  std::vector<Lib> libs = all_libs();
  if (opt.count("libs")) {
    std::vector<Lib> keep;
    for (auto &name : split(opt.at("libs")))
      for (auto &l : libs)
        if (name == l.name) keep.push_back(l);
    libs = keep;
  }
  int log_fd = -1;
  if (opt.count("log")) log_fd = open(opt.at("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::ofstream out(out_path, std::ios::app);
  char self[4096];
  const ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) return 1;
  self[k] = 0;

  std::set<std::string> broken;  // libraries that failed to start: not retried
  auto measure = [&](const Lib &l, const std::string &w, std::uint64_t n, int rep) {
    if (broken.count(l.name)) return;
    RunArgs a;
    a.lib = l.name;
    a.workload = w;
    a.n = n;
    std::vector<std::string> argv = {self,         "one", "--lib",  l.name,
                                     "--workload", w,     "--n",    std::to_string(n),
                                     "--cpu",      cpu,   "--seed", "42"};
    const std::uint64_t t0 = bench::mono_ns();
    std::string line = spawn(self, argv, log_fd, a);
    const double wall_s = static_cast<double>(bench::mono_ns() - t0) * 1e-9;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.find("unsupported:") != std::string::npos) return;  // not a measurement of this library
    if (line.find("\"ok\":false") != std::string::npos) {
      std::printf("  %-16s %s N=%llu FAILED: %s\n", l.name, w.c_str(), static_cast<unsigned long long>(n),
                  line.c_str());
      if (line.find("\"error\":\"init: ") != std::string::npos) broken.insert(l.name);
    }
    // Tag the line with the repetition number and the wall time it took.
    char tag[64];
    std::snprintf(tag, sizeof tag, ",\"rep\":%d,\"wall_s\":%.2f", rep, wall_s);
    line.insert(line.size() - 1, tag);
    out << line << "\n";
    out.flush();
  };

  for (int rep = 0; rep < reps; ++rep) {
    for (std::uint64_t n : sizes) {
      for (const std::string &w : workloads) {
        std::printf("rep %d/%d  N=%llu  %s\n", rep + 1, reps, static_cast<unsigned long long>(n), w.c_str());
        std::fflush(stdout);
        for (std::size_t j = 0; j < libs.size(); ++j) {
          const Lib &l = libs[(j + static_cast<std::size_t>(rep)) % libs.size()];
          if (n > l.max_n) continue;
          measure(l, w, n, rep);
        }
      }
    }
  }
  if (w4n) {
    std::printf("W4 (allocation counting) N=%llu\n", static_cast<unsigned long long>(w4n));
    for (const Lib &l : libs) measure(l, "W4", w4n, 0);
  }
  return 0;
}

}  // namespace
}  // namespace peers

int main(int argc, char **argv) {
  using namespace peers;
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  std::map<std::string, std::string> opt;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) return usage();
    opt[k.substr(2)] = argv[++i];
  }
  if (cmd == "list") {
    for (const Lib &l : all_libs())
      std::printf("%s\t%s\tthread_safe=%d\tmax_n=%llu\n", l.name, l.label, l.thread_safe,
                  static_cast<unsigned long long>(l.max_n));
    return 0;
  }
  if (cmd == "one") return cmd_one(opt);
  if (cmd == "all") return cmd_all(opt);
  return usage();
}
