// train.h's launcher: the ranks of this host started as torchrun starts them.
#include "efcnet/train.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace efcnet {
namespace {

using Clock = std::chrono::steady_clock;

// How long the other ranks get to exit on SIGTERM before SIGKILL.
constexpr auto kStopGrace = std::chrono::seconds(10);

// Asks the kernel for a free port on loopback. Another process may take it before rank 0 binds
// it; rank 0 then fails with a clear message rather than joining someone else's run.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw Error(std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
  return ntohs(address.sin_port);
}

std::vector<std::string> rank_environment(const std::vector<std::pair<std::string, std::string>>& variables) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    bool replaced = false;
    for (const auto& [name, value] : variables) replaced |= text.rfind(name + "=", 0) == 0;
    if (!replaced) env.push_back(text);
  }
  for (const auto& [name, value] : variables) env.push_back(name + "=" + value);
  return env;
}

pid_t spawn(const std::string& executable, const std::vector<std::string>& args, const std::vector<std::string>& env,
            const sigset_t& child_mask) {
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // A rank must not outlive its launcher, even one killed with SIGKILL.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != launcher) ::_exit(127);
    ::sigprocmask(SIG_SETMASK, &child_mask, nullptr);
    ::execve(executable.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  }
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

// The torchrun variable `name` as an integer, or `fallback` when it is unset.
int environment_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > 1000000) {
    throw OptionError(std::string(name) + ": expected a non-negative integer in the environment, got '" + text + "'");
  }
  return static_cast<int>(value);
}

}  // namespace

int launch_local_ranks(const LocalLaunch& launch, const std::string& executable, const std::vector<std::string>& args,
                       const std::function<void(const std::string&)>& on_message) {
  const auto option = [&launch](std::string_view field) { return option_name(launch.option_name, field); };
  if (launch.nproc_per_node < 1) throw OptionError(option("nproc_per_node") + " must be at least 1");
  if (launch.nnodes < 1 || launch.node_rank < 0 || launch.node_rank >= launch.nnodes) {
    throw OptionError(option("node_rank") + " must be in 0.." + option("nnodes") + "-1");
  }
  if (args.empty()) throw OptionError("no command line to run for the ranks");
  const auto say = [&on_message](const std::string& message) {
    if (on_message) on_message(message);
  };
  std::string master_addr = launch.master_addr;
  int master_port = launch.master_port;
  if (master_addr.empty()) {
    if (launch.nnodes > 1)
      throw OptionError("with " + option("nnodes") + " > 1 every host needs " + option("master_addr") +
                        " (rank 0's host)");
    master_addr = "127.0.0.1";
    master_port = free_loopback_port();
  }
  const int world = launch.nnodes * launch.nproc_per_node;

  // Signals are taken synchronously with sigtimedwait; the ranks get the original mask back.
  sigset_t handled, original;
  sigemptyset(&handled);
  for (const int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&handled, s);
  ::sigprocmask(SIG_BLOCK, &handled, &original);

  struct Rank {
    int rank;
    pid_t pid;
    bool running;
  };
  std::vector<Rank> ranks;
  const auto signal_running = [&](int signal) {
    for (const auto& r : ranks) {
      if (r.running) ::kill(r.pid, signal);
    }
  };
  int exit_code = 0;
  // When the ranks still running get SIGKILL; never until some rank has failed.
  constexpr Clock::time_point kNever = Clock::time_point::max();
  Clock::time_point kill_at = kNever;
  const auto stop_others = [&](int code) {
    if (exit_code == 0) exit_code = code;
    signal_running(SIGTERM);
    if (kill_at == kNever) kill_at = Clock::now() + kStopGrace;
  };

  for (int local = 0; local < launch.nproc_per_node; ++local) {
    const int rank = launch.node_rank * launch.nproc_per_node + local;
    const auto env = rank_environment({{"WORLD_SIZE", std::to_string(world)},
                                       {"RANK", std::to_string(rank)},
                                       {"LOCAL_RANK", std::to_string(local)},
                                       {"LOCAL_WORLD_SIZE", std::to_string(launch.nproc_per_node)},
                                       {"GROUP_RANK", std::to_string(launch.node_rank)},
                                       {"MASTER_ADDR", master_addr},
                                       {"MASTER_PORT", std::to_string(master_port)}});
    const pid_t pid = spawn(executable, args, env, original);
    if (pid < 0) {
      say("cannot start rank " + std::to_string(rank) + ": " + std::strerror(errno));
      stop_others(1);
      break;
    }
    ranks.push_back({rank, pid, true});
  }

  const auto any_running = [&] {
    for (const auto& r : ranks) {
      if (r.running) return true;
    }
    return false;
  };
  while (any_running()) {
    const timespec poll{0, 200 * 1000 * 1000};
    const int signal = ::sigtimedwait(&handled, nullptr, &poll);
    if (signal == SIGINT || signal == SIGTERM || signal == SIGHUP) {
      signal_running(signal);
      if (exit_code == 0) exit_code = 128 + signal;
      if (kill_at == kNever) kill_at = Clock::now() + kStopGrace;
    }
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (auto& r : ranks) {
        if (r.pid != pid) continue;
        r.running = false;
        const int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        if (code != 0 && exit_code == 0) {
          say("rank " + std::to_string(r.rank) + " (pid " + std::to_string(pid) + ") " + describe(status) +
              "; stopping the other local ranks");
          stop_others(code);
        }
      }
    }
    if (Clock::now() >= kill_at) {
      signal_running(SIGKILL);
      kill_at = kNever;
    }
  }
  ::sigprocmask(SIG_SETMASK, &original, nullptr);
  return exit_code;
}

std::pair<std::string, int> parse_master_address(const std::string& text, const std::string& option) {
  const auto colon = text.rfind(':');
  const std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  char* end = nullptr;
  const long number = std::strtol(port.c_str(), &end, 10);
  if (host.empty() || port.empty() || *end != '\0' || number < 1 || number > 65535) {
    throw OptionError(option + ": expected HOST:PORT (e.g. 10.0.0.1:29500), got '" + text + "'");
  }
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';  // [v6 address]:port
  return {bracketed ? host.substr(1, host.size() - 2) : host, static_cast<int>(number)};
}

int read_torchrun_environment(DistributedOptions& options, const GivenDistributedFields& given) {
  if (!given.master) {
    if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') options.master_addr = addr;
    options.master_port = environment_int("MASTER_PORT", options.master_port);
  }
  if (!given.world_size) options.world_size = environment_int("WORLD_SIZE", 1);
  if (!given.rank) options.rank = environment_int("RANK", 0);
  options.local_rank = environment_int("LOCAL_RANK", 0);
  if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
      agent != nullptr && std::string(agent) == "True") {
    options.launcher_hosts_store = true;
    options.restart_count = environment_int("TORCHELASTIC_RESTART_COUNT", 0);
  }
  return environment_int("LOCAL_WORLD_SIZE", 1);
}

}  // namespace efcnet
