#include "rank_launcher.h"

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
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

extern char** environ;

namespace efcnet::cli {
namespace {

using Clock = std::chrono::steady_clock;

// How long the other ranks get to exit on SIGTERM before SIGKILL.
constexpr auto kStopGrace = std::chrono::seconds(10);

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  if (args.empty()) throw std::runtime_error("cannot read this process's command line from /proc/self/cmdline");
  return args;
}

// The ranks run the same command without the options that make a process the launcher.
std::vector<std::string> without_launcher_options(const std::vector<std::string>& args) {
  const std::vector<std::string> launcher_options{"--nproc-per-node", "--nnodes", "--node-rank"};
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    bool dropped = false;
    for (const auto& name : launcher_options) {
      if (args[i] == name) {
        ++i;  // and its value
        dropped = true;
      } else if (args[i].rfind(name + "=", 0) == 0) {
        dropped = true;
      }
      if (dropped) break;
    }
    if (!dropped) kept.push_back(args[i]);
  }
  return kept;
}

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
  if (!ok) throw std::runtime_error(std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
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

pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, const sigset_t& child_mask) {
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
    ::execve("/proc/self/exe", argv.data(), envp.data());
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

}  // namespace

int launch_local_ranks(const LocalLaunch& launch) {
  if (launch.nproc_per_node < 1) throw std::invalid_argument("--nproc-per-node must be at least 1");
  if (launch.nnodes < 1 || launch.node_rank < 0 || launch.node_rank >= launch.nnodes) {
    throw std::invalid_argument("--node-rank must be in 0..--nnodes-1");
  }
  std::string master_addr = launch.master_addr;
  int master_port = launch.master_port;
  if (master_addr.empty()) {
    if (launch.nnodes > 1)
      throw std::invalid_argument("with --nnodes > 1 every host needs --master HOST:PORT (rank 0's host)");
    master_addr = "127.0.0.1";
    master_port = free_loopback_port();
  }
  const auto args = without_launcher_options(own_command_line());
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
    const pid_t pid = spawn(args, env, original);
    if (pid < 0) {
      std::fprintf(stderr, "efcnet: cannot start rank %d: %s\n", rank, std::strerror(errno));
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
          std::fprintf(stderr, "efcnet: rank %d (pid %d) %s; stopping the other local ranks\n", r.rank,
                       static_cast<int>(pid), describe(status).c_str());
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

}  // namespace efcnet::cli
