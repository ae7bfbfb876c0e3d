#include "ort_library.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "addon_error.h"
#include "run_pool.h"
#include "runtime_log.h"

namespace forecastd {

namespace {

constexpr const char* kMinimumVersion = "1.29";

std::mutex g_configureMutex;
// Written once under g_configureMutex, then only read; published with release/acquire ordering so worker
// threads that see the pointer also see the fully built library.
std::atomic<const OrtLibrary*> g_library{nullptr};
std::atomic<const OrtApi*> g_api{nullptr};

// 1 until the process says otherwise: an exit that never announced its code is not a success.
std::atomic<int> g_exitCode{1};
constexpr std::chrono::milliseconds kExitTeardownBound{2000};

void StopRunsAtExit() {
  if (RunPool::StopForExit(kExitTeardownBound)) return;
  // A load (which cannot be interrupted) or a run that ignored termination is still inside ONNX Runtime:
  // destroying ORT's statics under it would crash. Leave without them, with the exit code that was asked for.
  std::fflush(nullptr);
  _exit(g_exitCode.load());
}

// A shared object named like the ONNX Runtime library that is already mapped into this process, or "" when none is.
std::string LoadedOnnxRuntime() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        const char* name = info->dlpi_name;
        if (name == nullptr || std::strstr(name, "libonnxruntime") == nullptr) return 0;
        // The providers' shared library is loaded by ORT itself; only the runtime proper counts.
        if (std::strstr(name, "libonnxruntime_providers") != nullptr) return 0;
        *static_cast<std::string*>(data) = name;
        return 1;
      },
      &found);
  return found;
}

// ONNX Runtime's telemetry (on by default in its Linux builds) looks up and connects to Microsoft's collector,
// and writes a device id and an event database under $HOME and debug logs under /tmp. The runtime reads this
// variable when it loads; it is set, whatever the environment said, before the library is opened.
void TurnTelemetryOff() { setenv("ORT_DISABLE_TELEMETRY", "1", 1); }

void WarnLoadedElsewhere(const std::string& loaded) {
  const std::string message =
      "ONNX Runtime (" + loaded +
      ") was already loaded in this process by another module before forecastd configured it, so its "
      "telemetry may already be running: forecastd turned telemetry events off through the C API, but only "
      "ORT_DISABLE_TELEMETRY=1 set before the library loads stops it for sure. Set it in the process's "
      "environment, or load forecastd before the other module";
  RecordOrtLog(nullptr, ORT_LOGGING_LEVEL_WARNING, "forecastd", "", "", message.c_str());
}

std::string DlError() {
  const char* message = dlerror();
  return message != nullptr ? message : "unknown dlopen error";
}

}  // namespace

const OrtApi& Ort() {
  // Only reached after Configure succeeded: every ORT handle comes from the configured library.
  return *g_api.load(std::memory_order_acquire);
}

void StopForExit(int code) {
  g_exitCode.store(code);
  StopRunsAtExit();
}

const char* OrtErrorCodeName(OrtErrorCode code) {
  switch (code) {
    case ORT_OK: return "ORT_OK";
    case ORT_FAIL: return "ORT_FAIL";
    case ORT_INVALID_ARGUMENT: return "ORT_INVALID_ARGUMENT";
    case ORT_NO_SUCHFILE: return "ORT_NO_SUCHFILE";
    case ORT_NO_MODEL: return "ORT_NO_MODEL";
    case ORT_ENGINE_ERROR: return "ORT_ENGINE_ERROR";
    case ORT_RUNTIME_EXCEPTION: return "ORT_RUNTIME_EXCEPTION";
    case ORT_INVALID_PROTOBUF: return "ORT_INVALID_PROTOBUF";
    case ORT_MODEL_LOADED: return "ORT_MODEL_LOADED";
    case ORT_NOT_IMPLEMENTED: return "ORT_NOT_IMPLEMENTED";
    case ORT_INVALID_GRAPH: return "ORT_INVALID_GRAPH";
    case ORT_EP_FAIL: return "ORT_EP_FAIL";
    case ORT_MODEL_LOAD_CANCELED: return "ORT_MODEL_LOAD_CANCELED";
    case ORT_MODEL_REQUIRES_COMPILATION: return "ORT_MODEL_REQUIRES_COMPILATION";
    case ORT_NOT_FOUND: return "ORT_NOT_FOUND";
    default: return "ORT_FAIL";
  }
}

void CheckStatus(OrtStatus* status, const char* code, const std::string& context) {
  if (status == nullptr) return;
  OrtPtr<OrtStatus> owned(status);
  std::string message = Ort().GetErrorMessage(status);
  const char* ortCode = OrtErrorCodeName(Ort().GetErrorCode(status));
  throw AddonError(code, context.empty() ? message : context + ": " + message, ErrorKind::kError, ortCode);
}

const OrtLibrary* OrtLibrary::Current() { return g_library.load(std::memory_order_acquire); }

OrtLibrary::Snapshot OrtLibrary::Describe() const { return Snapshot{path_, version_, runThreads_, providers_}; }

OrtLibrary::Snapshot OrtLibrary::Configure(const std::string& path, unsigned runThreads, unsigned defaultRunThreads) {
  std::lock_guard<std::mutex> lock(g_configureMutex);
  if (const OrtLibrary* current = Current()) {
    if (current->path_ != path) {
      throw AddonError(kErrRuntimeLoad, "ONNX Runtime is already loaded from " + current->path_ +
                                            " in this process; it cannot switch to " + path +
                                            " (the library is chosen once per process)");
    }
    if (runThreads != 0 && runThreads != current->runThreads_) {
      throw AddonError(kErrRuntimeLoad, "the run thread pool already has " + std::to_string(current->runThreads_) +
                                            " threads in this process; it cannot change to " +
                                            std::to_string(runThreads));
    }
    return current->Describe();
  }

  const std::string loadedElsewhere = LoadedOnnxRuntime();
  TurnTelemetryOff();
  // RTLD_LOCAL keeps ORT's symbols out of the global namespace; the handle is deliberately never closed.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    throw AddonError(kErrRuntimeLoad, "cannot load the ONNX Runtime library " + path + ": " + DlError());
  }
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto getApiBase = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (getApiBase == nullptr) {
    dlclose(handle);
    throw AddonError(kErrRuntimeLoad, path + " is not an ONNX Runtime library: it has no OrtGetApiBase symbol");
  }
  const OrtApiBase* base = getApiBase();
  const char* rawVersion = base != nullptr ? base->GetVersionString() : nullptr;
  std::string version = rawVersion != nullptr ? rawVersion : "unknown";
  const OrtApi* api = base != nullptr ? base->GetApi(ORT_API_VERSION) : nullptr;
  if (api == nullptr) {
    dlclose(handle);
    throw AddonError(kErrRuntimeLoad, "the ONNX Runtime library " + path + " is version " + version +
                                          "; forecastd needs " + kMinimumVersion + " or newer (C API version " +
                                          std::to_string(ORT_API_VERSION) +
                                          "). Point FORECASTD_ORT_LIBRARY or configureRuntime({ libraryPath }) "
                                          "at a newer libonnxruntime");
  }
  g_api.store(api, std::memory_order_release);
  // Registered after the library loaded (and so after its static destructors were registered): it runs first.
  static std::once_flag exitHook;
  std::call_once(exitHook, [] { std::atexit(StopRunsAtExit); });

  OrtEnv* rawEnv = nullptr;
  // ORT's warnings and errors go to the embedder's logger (runtime_log.h), not to stderr: some are the only sign
  // of a real problem ("node not assigned to the requested execution provider").
  CheckStatus(api->CreateEnvWithCustomLogger(RecordOrtLog, nullptr, ORT_LOGGING_LEVEL_WARNING, "forecastd", &rawEnv),
              kErrRuntimeLoad, "cannot create the ONNX Runtime environment from " + path);
  OrtPtr<OrtEnv> env(rawEnv);
  // The second switch: the C API's own, for a library that did not read the environment variable.
  CheckStatus(api->DisableTelemetryEvents(env.get()), kErrRuntimeLoad, "cannot turn ONNX Runtime's telemetry off");
  if (!loadedElsewhere.empty()) WarnLoadedElsewhere(loadedElsewhere);
  OrtMemoryInfo* rawMemoryInfo = nullptr;
  CheckStatus(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &rawMemoryInfo), kErrRuntimeLoad,
              "cannot describe CPU memory");
  OrtPtr<OrtMemoryInfo> memoryInfo(rawMemoryInfo);

  std::vector<std::string> providers;
  char** names = nullptr;
  int count = 0;
  CheckStatus(api->GetAvailableProviders(&names, &count), kErrRuntimeLoad, "cannot list execution providers");
  for (int i = 0; i < count; ++i) providers.emplace_back(names[i]);
  CheckStatus(api->ReleaseAvailableProviders(names, count), kErrRuntimeLoad, "cannot list execution providers");

  std::unique_ptr<OrtLibrary> library(new OrtLibrary());
  library->path_ = path;
  library->version_ = version;
  library->runThreads_ = runThreads != 0 ? runThreads : (defaultRunThreads != 0 ? defaultRunThreads : 1);
  library->providers_ = std::move(providers);
  RunPool::Start(library->runThreads_, defaultRunThreads != 0 ? defaultRunThreads : library->runThreads_);
  library->env_ = env.release();
  library->cpuMemoryInfo_ = memoryInfo.release();
  // Published for the rest of the process and never destroyed (see the class comment).
  g_library.store(library.release(), std::memory_order_release);
  return Current()->Describe();
}

}  // namespace forecastd
