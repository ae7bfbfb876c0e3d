// The connection gate: counts the connections a uWebSockets.js server holds, exactly, and bounds them at the
// moment they are accepted.
//
// uWebSockets.js (uSockets over libuv) tells JavaScript about no connection opening or closing, and each time
// its listen socket is readable it accepts every connection waiting in the kernel's queue, until accept()
// fails. Counted from outside a few times a second, a burst is therefore accepted whole: it takes every
// descriptor the process has, the process's own files then fail (a dataset read, and DuckDB, whose failed open
// aborts the process), and accept() fails with EMFILE on every wake-up of the loop because the queue never
// empties.
//
// uSockets accepts and closes its sockets with accept4() and close(), which its module (the uws_*.node binary)
// calls through its procedure linkage table. The gate points those two entries of that module, and of no other,
// at the functions below (once per process; they pass every other call straight on):
// - accept4() on a gated listen socket accepts while fewer than `max` connections are open, and counts each.
//   At the limit it accepts and resets at once every connection still waiting, and answers EAGAIN, so uSockets
//   stops there: the oldest connections are the ones served, and the queue is empty again.
// - close() of a counted connection counts it out.
// When no descriptor is left to accept with, the waiting connections are reset all the same, with a descriptor
// kept spare for that; should even that fail, the listen socket is not watched until the next check(), so the
// loop never spins on it.
//
// Everything runs on the thread of the event loop the server runs on; the gates are per thread.
#include "connection_gate.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "addon_error.h"
#include "js_values.h"

namespace forecastd {

namespace {

// Connections reset per call while the queue's length cannot be read; any left wait for the next wake-up.
constexpr long kRefuseBatch = 256;

// The relocation type of a procedure linkage table entry; 0 where the gate knows none.
#if defined(__x86_64__)
constexpr unsigned kJumpSlot = R_X86_64_JUMP_SLOT;
#elif defined(__aarch64__)
constexpr unsigned kJumpSlot = R_AARCH64_JUMP_SLOT;
#else
constexpr unsigned kJumpSlot = 0;
#endif

struct Gate {
  double max = 0;
  // The listen socket gated now (-1: none, while the server does not listen) and its libuv poll.
  int listenFd = -1;
  uv_poll_t* poll = nullptr;
  // The descriptors of the connections accepted through the gate and not closed yet.
  std::unordered_set<int> open;
  // A descriptor held back (on /dev/null) so that a connection can be accepted, and reset, even when the
  // process has none left: closed just before that accept, opened again after.
  int spare = -1;
  double refused = 0;
  // The listen socket is not watched: connections wait, and no descriptor was left to reset them.
  bool stalled = false;
  bool released = false;

  ~Gate() {
    if (spare >= 0) close(spare);
  }
};

// This thread's gates, by the listen socket each gates and by the connections each counts.
struct Gates {
  std::unordered_map<int, std::shared_ptr<Gate>> byListenFd;
  std::unordered_map<int, std::shared_ptr<Gate>> byConnection;
};

// Never freed: uSockets may still close sockets while the thread or the process ends, after thread-local
// objects have been destroyed.
// Null only when even that allocation failed: the gated calls then pass straight through.
Gates* ThisThread() noexcept {
  thread_local Gates* gates = nullptr;
  if (gates == nullptr) gates = new (std::nothrow) Gates();
  return gates;
}

// How many connections wait in the accept queue of listening socket `fd`; -1 when that cannot be read.
long Waiting(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
  if (length < offsetof(tcp_info, tcpi_unacked) + sizeof info.tcpi_unacked) return -1;
  return static_cast<long>(info.tcpi_unacked);
}

// Accepts up to `count` waiting connections and resets each at once; stops early when none is left. Stops
// watching the listen socket when connections are left waiting for want of a descriptor.
void Refuse(Gate& gate, long count) {
  bool starved = false;
  for (long done = 0; done < count;) {
    const int client = accept4(gate.listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client >= 0) {
      // A reset rather than a FIN: the client learns at once that it was not served, and no TIME_WAIT
      // socket is left here for each one.
      const linger reset{1, 0};
      static_cast<void>(setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof reset));
      close(client);
      ++done;
      gate.refused += 1;
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno == EMFILE || errno == ENFILE) && gate.spare >= 0) {
      close(gate.spare);
      gate.spare = -1;
      continue;
    }
    starved = errno == EMFILE || errno == ENFILE;
    break;  // EAGAIN: none left
  }
  if (gate.spare < 0) gate.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // The socket would be readable on every wake-up: the next check() watches it again.
  if (starved && !gate.stalled && gate.poll != nullptr) {
    gate.stalled = true;
    uv_poll_stop(gate.poll);
  }
}

void RefuseWaiting(Gate& gate) {
  const long waiting = Waiting(gate.listenFd);
  Refuse(gate, waiting > 0 ? waiting : kRefuseBatch);
}

// uSockets' accept4().
int GatedAccept4(int fd, sockaddr* address, socklen_t* length, int flags) noexcept {
  Gates* gatesOfThread = ThisThread();
  if (gatesOfThread == nullptr) return accept4(fd, address, length, flags);
  Gates& gates = *gatesOfThread;
  const auto found = gates.byListenFd.find(fd);
  if (found == gates.byListenFd.end()) return accept4(fd, address, length, flags);
  const std::shared_ptr<Gate> gate = found->second;
  if (static_cast<double>(gate->open.size()) < gate->max) {
    const int client = accept4(fd, address, length, flags);
    if (client >= 0) {
      // No exception may reach uSockets' C code: a connection that cannot be counted is not kept.
      try {
        gate->open.insert(client);
        gates.byConnection[client] = gate;
      } catch (...) {
        gate->open.erase(client);
        close(client);
        errno = ENOMEM;
        return -1;
      }
      return client;
    }
    if (errno != EMFILE && errno != ENFILE) return -1;
  }
  // At the limit, or no descriptor left: what waits is reset, and uSockets finds nothing more to accept.
  RefuseWaiting(*gate);
  errno = EAGAIN;
  return -1;
}

// uSockets' close().
int GatedClose(int fd) noexcept {
  Gates* gatesOfThread = ThisThread();
  if (gatesOfThread == nullptr) return close(fd);
  Gates& gates = *gatesOfThread;
  if (const auto found = gates.byConnection.find(fd); found != gates.byConnection.end()) {
    found->second->open.erase(fd);
    gates.byConnection.erase(found);
  } else if (const auto listening = gates.byListenFd.find(fd); listening != gates.byListenFd.end()) {
    // A gated listen socket closed without detach(): its number may come back as another socket's, and its
    // poll is being freed.
    Gate& gate = *listening->second;
    gate.listenFd = -1;
    gate.poll = nullptr;
    gate.stalled = false;
    gates.byListenFd.erase(listening);
  }
  return close(fd);
}

// Points uSockets' accept4() and close() at the gate's: the entries of its module's procedure linkage table.
class Interposer {
 public:
  // Once per process; the answer stays. Empty when it worked, else why not.
  static const std::string& Install() {
    static std::once_flag once;
    static std::string failure;
    std::call_once(once, [] { failure = InstallOnce(); });
    return failure;
  }

 private:
  struct Module {
    std::string name;
    ElfW(Addr) base = 0;
    const ElfW(Phdr)* headers = nullptr;
    ElfW(Half) count = 0;
  };

  static int Collect(dl_phdr_info* info, size_t, void* data) {
    if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0') {
      static_cast<std::vector<Module>*>(data)->push_back({info->dlpi_name, info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum});
    }
    return 0;
  }

  // Whether `module` is uSockets' own: it defines us_socket_context_listen itself.
  static bool IsUSockets(const Module& module) {
    void* handle = dlopen(module.name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) return false;
    bool own = false;
    if (void* symbol = dlsym(handle, "us_socket_context_listen"); symbol != nullptr) {
      Dl_info where{};
      own = dladdr(symbol, &where) != 0 && where.dli_fname != nullptr && module.name == where.dli_fname;
    }
    dlclose(handle);
    return own;
  }

  static std::string InstallOnce() {
    if (kJumpSlot == 0) return "not supported on this processor";
    std::vector<Module> modules;
    dl_iterate_phdr(&Collect, &modules);
    const Module* usockets = nullptr;
    for (const Module& module : modules) {
      if (IsUSockets(module)) {
        if (usockets != nullptr) return "more than one uWebSockets.js binary is loaded";
        usockets = &module;
      }
    }
    if (usockets == nullptr) return "the uWebSockets.js binary is not loaded";

    const ElfW(Dyn)* dynamic = nullptr;
    ElfW(Addr) relroStart = 0;
    ElfW(Addr) relroEnd = 0;
    for (ElfW(Half) i = 0; i < usockets->count; ++i) {
      const ElfW(Phdr)& header = usockets->headers[i];
      if (header.p_type == PT_DYNAMIC) dynamic = reinterpret_cast<const ElfW(Dyn)*>(usockets->base + header.p_vaddr);
      if (header.p_type == PT_GNU_RELRO) {
        relroStart = usockets->base + header.p_vaddr;
        relroEnd = relroStart + header.p_memsz;
      }
    }
    if (dynamic == nullptr) return "its binary has no dynamic section";
    ElfW(Addr) relocations = 0, symbols = 0, strings = 0;
    ElfW(Xword) relocationBytes = 0, stringBytes = 0;
    ElfW(Sxword) relocationKind = 0;
    for (const ElfW(Dyn)* entry = dynamic; entry->d_tag != DT_NULL; ++entry) {
      switch (entry->d_tag) {
        case DT_JMPREL: relocations = entry->d_un.d_ptr; break;
        case DT_PLTRELSZ: relocationBytes = entry->d_un.d_val; break;
        case DT_PLTREL: relocationKind = static_cast<ElfW(Sxword)>(entry->d_un.d_val); break;
        case DT_SYMTAB: symbols = entry->d_un.d_ptr; break;
        case DT_STRTAB: strings = entry->d_un.d_ptr; break;
        case DT_STRSZ: stringBytes = entry->d_un.d_val; break;
        default: break;
      }
    }
    if (relocations == 0 || symbols == 0 || strings == 0 || relocationKind != DT_RELA) {
      return "its binary has no procedure linkage table the gate can read";
    }
    // The loader relocates these addresses in place; one below the load address is still relative to it.
    const auto absolute = [&](ElfW(Addr) address) { return address < usockets->base ? address + usockets->base : address; };
    const auto* relocation = reinterpret_cast<const ElfW(Rela)*>(absolute(relocations));
    const auto* symbol = reinterpret_cast<const ElfW(Sym)*>(absolute(symbols));
    const char* names = reinterpret_cast<const char*>(absolute(strings));
    void** acceptSlot = nullptr;
    void** closeSlot = nullptr;
    for (size_t i = 0; i < relocationBytes / sizeof(ElfW(Rela)); ++i) {
      if (ELF64_R_TYPE(relocation[i].r_info) != kJumpSlot) continue;
      const ElfW(Word) name = symbol[ELF64_R_SYM(relocation[i].r_info)].st_name;
      if (name >= stringBytes) continue;
      void** slot = reinterpret_cast<void**>(usockets->base + relocation[i].r_offset);
      if (std::strcmp(names + name, "accept4") == 0) acceptSlot = slot;
      if (std::strcmp(names + name, "close") == 0) closeSlot = slot;
    }
    if (acceptSlot == nullptr || closeSlot == nullptr) return "its binary does not call accept4() and close() through its linkage table";
    if (!Point(acceptSlot, reinterpret_cast<void*>(&GatedAccept4), relroStart, relroEnd) ||
        !Point(closeSlot, reinterpret_cast<void*>(&GatedClose), relroStart, relroEnd)) {
      return std::string("its linkage table cannot be written: ") + std::strerror(errno);
    }
    return std::string();
  }

  // Writes `target` into `slot`, making its page writable for that if the loader made it read-only.
  static bool Point(void** slot, void* target, ElfW(Addr) relroStart, ElfW(Addr) relroEnd) {
    const auto address = reinterpret_cast<ElfW(Addr)>(slot);
    const long page = sysconf(_SC_PAGESIZE);
    const auto down = [page](ElfW(Addr) a) { return a & ~static_cast<ElfW(Addr)>(page - 1); };
    // The loader makes read-only the whole pages of the RELRO segment only ([down(start), down(end))): a page
    // the segment shares with writable data past its end stays writable, and must not be made read-only here.
    const bool readOnly = address >= down(relroStart) && address < down(relroEnd);
    void* start = reinterpret_cast<void*>(down(address));
    if (readOnly && mprotect(start, static_cast<size_t>(page), PROT_READ | PROT_WRITE) != 0) return false;
    __atomic_store_n(slot, target, __ATOMIC_RELEASE);
    if (readOnly) static_cast<void>(mprotect(start, static_cast<size_t>(page), PROT_READ));
    return true;
  }
};

struct Search {
  int port = -1;
  uv_poll_t* found = nullptr;
  int matches = 0;
};

// Collects the polls of listening TCP sockets bound to `port`.
void Visit(uv_handle_t* handle, void* arg) {
  auto* search = static_cast<Search*>(arg);
  if (handle->type != UV_POLL || uv_is_closing(handle) != 0 || uv_is_active(handle) == 0) return;
  uv_os_fd_t fd = -1;
  if (uv_fileno(handle, &fd) != 0) return;
  int listening = 0;
  socklen_t length = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening == 0) return;
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return;
  int port = -1;
  if (address.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  if (address.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  if (port != search->port) return;
  search->found = reinterpret_cast<uv_poll_t*>(handle);
  ++search->matches;
}

void Watch(Gate& gate) {
  if (!gate.stalled) return;
  gate.stalled = false;
  // uSockets' own callback, as it left it.
  if (gate.poll != nullptr && uv_is_closing(reinterpret_cast<uv_handle_t*>(gate.poll)) == 0) {
    uv_poll_start(gate.poll, UV_READABLE, gate.poll->poll_cb);
  }
}

void Detach(Gate& gate) {
  Watch(gate);
  Gates* gates = ThisThread();
  if (gate.listenFd >= 0 && gates != nullptr) gates->byListenFd.erase(gate.listenFd);
  gate.listenFd = -1;
  gate.poll = nullptr;
}

int PortOf(const Napi::CallbackInfo& info) {
  const double port = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(port >= 1 && port <= 65535) || port != static_cast<double>(static_cast<int>(port))) {
    throw RangeErrorOf("the port must be an integer from 1 to 65535");
  }
  return static_cast<int>(port);
}

Napi::Value Attach(const Napi::CallbackInfo& info, const std::shared_ptr<Gate>& gate) {
  Napi::Env env = info.Env();
  const int port = PortOf(info);
  if (gate->released) throw AddonError(kErrInvalidArgument, "the connection gate was released");
  Detach(*gate);
  uv_loop_t* loop = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_uv_event_loop(env, &loop), Napi::Value());
  Search search;
  search.port = port;
  uv_walk(loop, &Visit, &search);
  // None (not listening, or not through libuv), or more than one: nothing to gate for sure.
  if (search.matches != 1) return Napi::Boolean::New(env, false);
  uv_os_fd_t fd = -1;
  static_cast<void>(uv_fileno(reinterpret_cast<uv_handle_t*>(search.found), &fd));
  Gates* gates = ThisThread();
  if (gates == nullptr) throw AddonError(kErrInvalidArgument, "out of memory for the connection gate");
  if (gates->byListenFd.count(fd) != 0) {
    throw AddonError(kErrInvalidArgument, "the listen socket on port " + std::to_string(port) + " is gated already");
  }
  gate->listenFd = fd;
  gate->poll = search.found;
  gates->byListenFd[fd] = gate;
  return Napi::Boolean::New(env, true);
}

void Release(const std::shared_ptr<Gate>& gate) {
  if (gate->released) return;
  Detach(*gate);
  if (Gates* gates = ThisThread(); gates != nullptr) {
    for (const int fd : gate->open) gates->byConnection.erase(fd);
  }
  gate->open.clear();
  gate->released = true;
}

}  // namespace

Napi::Value CreateConnectionGate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, kErrInvalidArgument, "cannot gate connections", [&]() -> Napi::Value {
    const double max = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(max >= 1)) throw RangeErrorOf("the connection limit must be a number from 1");
    const std::string& failure = Interposer::Install();
    if (!failure.empty()) throw AddonError(kErrInvalidArgument, "connections cannot be gated: " + failure);
    auto gate = std::make_shared<Gate>();
    gate->max = max;
    gate->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);

    Napi::Object object = Napi::Object::New(env);
    DefineValue(env, object, "attach", Napi::Function::New(env, [gate](const Napi::CallbackInfo& call) -> Napi::Value {
      return GuardJs(call.Env(), kErrInvalidArgument, "cannot gate the listen socket", [&]() { return Attach(call, gate); });
    }, "attach"));
    DefineValue(env, object, "detach", Napi::Function::New(env, [gate](const Napi::CallbackInfo& call) -> Napi::Value {
      Detach(*gate);
      return call.Env().Undefined();
    }, "detach"));
    DefineValue(env, object, "check", Napi::Function::New(env, [gate](const Napi::CallbackInfo& call) -> Napi::Value {
      Watch(*gate);
      Napi::Object counts = Napi::Object::New(call.Env());
      DefineValue(call.Env(), counts, "open", Napi::Number::New(call.Env(), static_cast<double>(gate->open.size())));
      DefineValue(call.Env(), counts, "refused", Napi::Number::New(call.Env(), gate->refused));
      return counts;
    }, "check"));
    DefineValue(env, object, "release", Napi::Function::New(env, [gate](const Napi::CallbackInfo& call) -> Napi::Value {
      Release(gate);
      return call.Env().Undefined();
    }, "release"));
    return object;
  });
}

}  // namespace forecastd
