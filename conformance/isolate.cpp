// Running an implementation in a child process: a crash or a hang fails one case, not the run.
//
// Protocol over two pipes: frames of a 4-byte little-endian length and that many bytes of JSON.
// The child sends a hello first ({"name","version","abi_version"} or {"fatal": message}), then
// answers each request (a corpus line) with a results record.
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "conformance.hpp"
#include "lossbench/error.hpp"

namespace lossbench::conformance {

namespace {

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool write_frame(int fd, const std::string& text) {
  const auto n = static_cast<std::uint32_t>(text.size());
  const unsigned char len[4] = {
      static_cast<unsigned char>(n & 0xff), static_cast<unsigned char>((n >> 8) & 0xff),
      static_cast<unsigned char>((n >> 16) & 0xff), static_cast<unsigned char>((n >> 24) & 0xff)};
  return write_all(fd, len, 4) && write_all(fd, text.data(), text.size());
}

enum class ReadResult { ok, eof, timeout };

using Clock = std::chrono::steady_clock;

// Reads exactly n bytes before `deadline` (no deadline when `timed` is false).
ReadResult read_exact(int fd, char* p, std::size_t n, bool timed, Clock::time_point deadline) {
  while (n > 0) {
    if (timed) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return ReadResult::timeout;
      pollfd pfd{fd, POLLIN, 0};
      const int r = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return ReadResult::timeout;
    }
    const ssize_t got = ::read(fd, p, n);
    if (got < 0) {
      if (errno == EINTR) continue;
      return ReadResult::eof;
    }
    if (got == 0) return ReadResult::eof;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return ReadResult::ok;
}

ReadResult read_frame(int fd, std::string& text, bool timed, Clock::time_point deadline) {
  unsigned char len[4];
  ReadResult r = read_exact(fd, reinterpret_cast<char*>(len), 4, timed, deadline);
  if (r != ReadResult::ok) return r;
  const std::uint32_t n =
      len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<std::uint32_t>(len[3]) << 24);
  text.assign(n, '\0');
  return read_exact(fd, text.data(), n, timed, deadline);
}

[[noreturn]] void child_main(int in, int out, const IsolatedRunner::Loader& loader) {
  // Whatever the implementation prints goes to stderr, never into the scorer's stdout.
  ::dup2(2, 1);
  std::string error;
  const lb_impl* impl = nullptr;
  try {
    impl = loader(error);
  } catch (const std::exception& e) {
    error = e.what();
  }
  ojson hello;
  if (impl == nullptr) {
    hello["fatal"] = error.empty() ? "cannot load the implementation" : error;
    write_frame(out, hello.dump());
    ::_exit(3);
  }
  hello["name"] = impl->name ? impl->name : "";
  hello["version"] = impl->version ? impl->version : "";
  hello["abi_version"] = impl->abi_version;
  if (!write_frame(out, hello.dump())) ::_exit(3);
  std::string request;
  while (read_frame(in, request, false, {}) == ReadResult::ok) {
    ojson reply;
    try {
      const CorpusCase c = corpus_case_from_line(ojson::parse(request));
      reply = run_case(*impl, c);
    } catch (const std::exception& e) {
      reply = {{"status", "internal_error"},
               {"error", {{"message", std::string("worker: ") + e.what()}}}};
    }
    if (!write_frame(out, reply.dump())) ::_exit(3);
  }
  ::_exit(0);
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGPIPE: return "SIGPIPE";
    case SIGTRAP: return "SIGTRAP";
    default: return "signal";
  }
}

}  // namespace

IsolatedRunner::IsolatedRunner(Loader loader, double timeout_seconds)
    : loader_(std::move(loader)), timeout_(timeout_seconds) {
  ::signal(SIGPIPE, SIG_IGN);
}

IsolatedRunner::~IsolatedRunner() { stop(false); }

void IsolatedRunner::start() {
  int down[2], up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) throw std::runtime_error("pipe() failed");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork() failed");
  if (pid == 0) {
    ::close(down[1]);
    ::close(up[0]);
    child_main(down[0], up[1], loader_);
  }
  ::close(down[0]);
  ::close(up[1]);
  pid_ = pid;
  to_child_ = down[1];
  from_child_ = up[0];
  std::string text;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_));
  const ReadResult r = read_frame(from_child_, text, true, deadline);
  if (r != ReadResult::ok) {
    const std::string why = r == ReadResult::timeout ? "timed out while loading" : death_reason();
    stop(true);
    throw Error(ErrorKind::Format, "the implementation's worker did not start: " + why);
  }
  ojson h = ojson::parse(text, nullptr, false);
  if (h.is_discarded() || h.contains("fatal")) {
    const std::string why = h.is_discarded() ? "bad hello" : h["fatal"].get<std::string>();
    stop(true);
    throw Error(ErrorKind::Format, why);
  }
  hello_ = std::move(h);
}

std::string IsolatedRunner::death_reason() {
  if (pid_ < 0) return "no worker";
  int status = 0;
  // The pipe closed: the child is gone or about to be; wait for it (bounded).
  for (int i = 0; i < 200; ++i) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        return std::string("killed by signal ") + std::to_string(sig) + " (" + signal_name(sig) +
               ")";
      }
      if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
      return "ended";
    }
    ::usleep(10000);
  }
  return "closed its pipe";
}

void IsolatedRunner::stop(bool kill_child) {
  if (to_child_ >= 0) ::close(to_child_);
  if (from_child_ >= 0) ::close(from_child_);
  to_child_ = from_child_ = -1;
  if (pid_ > 0) {
    if (kill_child) ::kill(pid_, SIGKILL);
    int status = 0;
    if (!kill_child) {
      // Closing its input ends the child's loop; kill it if it does not go.
      for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(10000);
      ::kill(pid_, SIGKILL);
    }
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

ojson IsolatedRunner::hello() {
  if (pid_ < 0) start();
  return hello_;
}

ojson IsolatedRunner::run(const CorpusCase& c) {
  if (pid_ < 0) {
    start();
  }
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_));
  std::string text;
  ReadResult r = ReadResult::eof;
  if (write_frame(to_child_, c.line.dump())) r = read_frame(from_child_, text, true, deadline);
  if (r == ReadResult::ok) {
    ojson reply = ojson::parse(text, nullptr, false);
    if (!reply.is_discarded()) return reply;
  }
  ojson reply;
  reply["id"] = c.id;
  if (r == ReadResult::timeout) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "no answer within %g s; worker killed", timeout_);
    reply["status"] = "timeout";
    reply["error"] = {{"message", buf}};
    stop(true);
  } else {
    reply["status"] = "crashed";
    reply["error"] = {{"message", "worker " + death_reason()}};
    stop(true);
  }
  ++restarts_;
  return reply;
}

// ---------------------------------------------------------------- an implementation as check runs
// it

ImplRunner::ImplRunner(const std::string& spec, bool isolate, double timeout_seconds)
    : spec_(spec), name_(spec) {
  if (names_plugin(spec) || isolate) {
    isolated_ = std::make_unique<IsolatedRunner>(
        [spec](std::string& e) { return load_implementation(spec, e); }, timeout_seconds);
    const ojson h = isolated_->hello();
    name_ = h.value("name", spec);
    version_ = h.value("version", "");
  } else {
    std::string e;
    in_process_ = load_implementation(spec, e);
    if (in_process_ == nullptr) throw Error(ErrorKind::Format, e);
    name_ = in_process_->name ? in_process_->name : spec;
    version_ = in_process_->version ? in_process_->version : "";
  }
}

ojson ImplRunner::run(const CorpusCase& c) {
  return isolated_ ? isolated_->run(c) : run_case(*in_process_, c);
}

}  // namespace lossbench::conformance
