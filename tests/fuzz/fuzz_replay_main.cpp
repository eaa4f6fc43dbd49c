// fuzz_replay_main.cpp -- runs callout_fuzz.cpp without libFuzzer.
//
//   callout_fuzz_replay PATH...          run every file (directories: every
//                                        file in them) through the target
//   callout_fuzz_replay --random N SEED  also run N pseudo-random inputs
//   callout_fuzz_replay --make-seeds DIR write the seed corpus
//
// The ctest callout_fuzz_corpus runs the committed corpus plus a few hundred
// random inputs with whatever compiler and sanitizer the build uses; the
// coverage-guided run is scripts/reliability.sh (clang, libFuzzer).
#include <dirent.h>
#include <sys/stat.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace {

bool run_file(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  std::vector<std::uint8_t> buf;
  std::uint8_t chunk[4096];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) buf.insert(buf.end(), chunk, chunk + n);
  std::fclose(f);
  LLVMFuzzerTestOneInput(buf.data(), buf.size());
  return true;
}

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// ---- the seed corpus -----------------------------------------------------------
// The encoding is callout_fuzz.cpp's: a CPU byte, then operations whose first
// byte picks the operation (byte % 13) and the callout ((byte >> 4) % 8).
enum Op {
  kInit,
  kReset,
  kReset2,
  kSchedule,
  kSetfunc,
  kStop,
  kHalt,
  kAdvance,
  kAdvance2,
  kBind,
  kAck,
  kProg,
  kDestroy
};

std::uint8_t code(int op, int slot) {
  for (int c = 0; c < 256; ++c)
    if (c % 13 == op && (c >> 4) % 8 == slot) return static_cast<std::uint8_t>(c);
  std::abort();
}

struct Builder {
  std::vector<std::uint8_t> b;
  explicit Builder(int ncpu) { b.push_back(static_cast<std::uint8_t>(ncpu - 1)); }
  // Ticks: index into the special table (0: 0, 1: -1, 2: 1, 14: INT_MAX,
  // 15: INT_MAX-1, 16: INT_MIN, ...), or 1..96 as 127 + n.
  Builder &init(int slot, int kind) { return put({code(kInit, slot), static_cast<std::uint8_t>(kind)}); }
  Builder &reset(int slot, std::uint8_t ticks) { return put({code(kReset, slot), ticks}); }
  Builder &schedule(int slot, std::uint8_t ticks) { return put({code(kSchedule, slot), ticks}); }
  Builder &setfunc(int slot) { return put({code(kSetfunc, slot)}); }
  Builder &stop(int slot) { return put({code(kStop, slot)}); }
  Builder &halt(int slot) { return put({code(kHalt, slot)}); }
  // Advance: 0..15 index the special table (10: INT_MAX, 14: 2^40), 96+n: n ticks.
  Builder &advance(std::uint8_t amount) { return put({code(kAdvance, 0), amount}); }
  Builder &bind(int slot, int cpu) { return put({code(kBind, slot), static_cast<std::uint8_t>(cpu)}); }
  Builder &ack(int slot) { return put({code(kAck, slot)}); }
  Builder &prog(int slot, int act, std::uint8_t ticks, int other, int budget) {
    return put({code(kProg, slot), static_cast<std::uint8_t>(act), ticks, static_cast<std::uint8_t>(other),
                static_cast<std::uint8_t>(budget)});
  }
  Builder &destroy(int slot) { return put({code(kDestroy, slot)}); }
  Builder &put(std::initializer_list<std::uint8_t> bytes) {
    b.insert(b.end(), bytes);
    return *this;
  }
};
constexpr std::uint8_t T(int n) { return static_cast<std::uint8_t>(127 + n); }  // n ticks, 1..96
constexpr std::uint8_t A(int n) { return static_cast<std::uint8_t>(95 + n); }   // advance n, 1..128
enum { kMpsafe, kGiant, kMtx, kMtxRu };
enum {
  kNone,
  kRearmReset,
  kRearmSchedule,
  kResetOther,
  kStopOther,
  kStopSelf,
  kHaltSelf,
  kAckSelf,
  kDestroySelf
};

bool write_seed(const std::string &dir, const std::string &name, const std::vector<std::uint8_t> &bytes) {
  const std::string path = dir + "/" + name;
  FILE *f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return true;
}

int make_seeds(const std::string &dir) {
  mkdir(dir.c_str(), 0755);
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> seeds;
  // Each kind: arm, fire, stop says it fired.
  for (int k = 0; k < 4; ++k) {
    Builder b(2);
    b.init(0, k).reset(0, T(1)).advance(A(1)).stop(0).reset(0, T(3)).advance(A(2)).halt(0).advance(A(5));
    seeds.push_back({"kind" + std::to_string(k), b.b});
  }
  // Tick values 0, -1, INT_MIN (all mean 1) and INT_MAX, from several ticks.
  {
    Builder b(2);
    b.init(0, kMpsafe).init(1, kMpsafe).init(2, kMtx).init(3, kGiant);
    b.reset(0, 0).reset(1, 1).reset(2, 16).reset(3, 14).advance(1).advance(10).advance(1);
    seeds.push_back({"ticks-edge", b.b});
  }
  {
    Builder b(4);
    b.advance(14).init(0, kMpsafe).reset(0, 14).advance(10).stop(0).reset(0, 15).advance(11).advance(10);
    seeds.push_back({"intmax-high", b.b});
  }
  // Rescheduling earlier and later (lazy path), schedule after setfunc.
  {
    Builder b(1);
    b.init(0, kMpsafe).reset(0, T(90)).reset(0, T(5)).reset(0, T(70)).advance(A(69)).advance(A(1));
    b.setfunc(1).init(1, kMtxRu).setfunc(1).schedule(1, T(64)).schedule(1, 7).advance(A(100));
    seeds.push_back({"reschedule", b.b});
  }
  // Handlers re-arming themselves (reset and schedule, 0 ticks meaning 1).
  {
    Builder b(2);
    b.init(0, kMpsafe).prog(0, kRearmReset, 0, 0, 15).reset(0, T(1));
    b.init(1, kGiant).prog(1, kRearmSchedule, T(2), 0, 9).reset(1, T(1)).advance(A(40));
    seeds.push_back({"rearm", b.b});
  }
  // Handlers resetting and stopping other callouts on 4 CPUs (migration).
  {
    Builder b(4);
    for (int i = 0; i < 8; ++i) b.init(i, i % 4);
    b.bind(0, 1).bind(2, 3);
    b.prog(0, kResetOther, T(2), 4, 10).prog(1, kStopOther, 0, 5, 10).prog(4, kRearmReset, T(3), 0, 5);
    for (int i = 0; i < 8; ++i) b.reset(i, T(1 + i));
    b.advance(A(30)).stop(5).stop(4);
    seeds.push_back({"cross", b.b});
  }
  // Self stop, halt, ack and destroy from the handler.
  {
    Builder b(2);
    b.init(0, kMpsafe).prog(0, kStopSelf, 0, 0, 3).reset(0, T(2));
    b.init(1, kMtx).prog(1, kHaltSelf, 0, 0, 3).reset(1, T(2));
    b.init(2, kGiant).prog(2, kAckSelf, 0, 0, 3).reset(2, T(2));
    b.init(3, kMtxRu).prog(3, kDestroySelf, 0, 0, 1).reset(3, T(2));
    b.advance(A(3)).stop(0).stop(1).stop(2).ack(2).init(3, kMpsafe).reset(3, T(1)).advance(A(1));
    seeds.push_back({"self", b.b});
  }
  // Bind, destroy, init again; predicates after ack.
  {
    Builder b(3);
    b.init(5, kMpsafe).bind(5, 2).reset(5, T(4)).advance(A(4)).ack(5).stop(5).destroy(5).init(5, kMtx);
    b.bind(5, 1).reset(5, T(1)).advance(A(1)).halt(5).destroy(5);
    seeds.push_back({"bind-destroy", b.b});
  }
  // Random programs.
  Rng r{0x1234567887654321ull};
  for (int i = 0; i < 40; ++i) {
    std::vector<std::uint8_t> bytes(32 + r.next() % 400);
    for (auto &x : bytes) x = static_cast<std::uint8_t>(r.next());
    seeds.push_back({"random" + std::to_string(i), bytes});
  }
  for (auto &s : seeds)
    if (!write_seed(dir, s.first, s.second)) return 1;
  std::printf("wrote %zu seeds to %s\n", seeds.size(), dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  setenv("CALLOUT_FUZZ_FRESH_DOMAIN", "1", 0);  // every input from tick 0: exact reproduction
  if (argc == 3 && std::strcmp(argv[1], "--make-seeds") == 0) return make_seeds(argv[2]);
  std::size_t files = 0, random = 0;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--random") == 0 && a + 2 < argc) {
      const long n = std::strtol(argv[a + 1], nullptr, 10);
      Rng r{std::strtoull(argv[a + 2], nullptr, 10) | 1};
      a += 2;
      for (long i = 0; i < n; ++i) {
        std::vector<std::uint8_t> bytes(1 + r.next() % 600);
        for (auto &x : bytes) x = static_cast<std::uint8_t>(r.next());
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
        ++random;
      }
      continue;
    }
    struct stat st;
    if (stat(argv[a], &st) != 0) {
      std::perror(argv[a]);
      return 2;
    }
    if (S_ISDIR(st.st_mode)) {
      DIR *dir = opendir(argv[a]);
      std::vector<std::string> names;
      while (dirent *e = readdir(dir))
        if (e->d_name[0] != '.') names.push_back(std::string(argv[a]) + "/" + e->d_name);
      closedir(dir);
      for (const auto &n : names) files += run_file(n);
    } else {
      files += run_file(argv[a]);
    }
  }
  if (files + random == 0) {
    std::fprintf(stderr, "callout_fuzz_replay: no inputs\n");
    return 2;
  }
  std::printf("callout_fuzz_replay: %zu corpus files and %zu random inputs agree with the model\n", files,
              random);
  return 0;
}
