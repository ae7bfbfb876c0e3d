#include "ort_library.h"

#include <dlfcn.h>

#include <atomic>

#include "addon_error.h"
#include "run_pool.h"

namespace forecastd {

namespace {

constexpr const char* kMinimumVersion = "1.29";

std::mutex g_configureMutex;
// Written once under g_configureMutex, then only read; published with release/acquire ordering so worker
// threads that see the pointer also see the fully built library.
std::atomic<const OrtLibrary*> g_library{nullptr};
std::atomic<const OrtApi*> g_api{nullptr};

std::string DlError() {
  const char* message = dlerror();
  return message != nullptr ? message : "unknown dlopen error";
}

}  // namespace

const OrtApi& Ort() {
  // Only reached after Configure succeeded: every ORT handle comes from the configured library.
  return *g_api.load(std::memory_order_acquire);
}

void CheckStatus(OrtStatus* status, const char* code, const std::string& context) {
  if (status == nullptr) return;
  OrtPtr<OrtStatus> owned(status);
  std::string message = Ort().GetErrorMessage(status);
  throw AddonError(code, context.empty() ? message : context + ": " + message);
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

  OrtEnv* env = nullptr;
  // Every failure ORT reports also comes back as an OrtStatus, which the caller gets as a rejected promise
  // with ORT's message (and the server logs through its own logger). ORT's own stderr lines for the same
  // failures would only duplicate them outside that logger, so only fatal ones are printed.
  CheckStatus(api->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "forecastd", &env), kErrRuntimeLoad,
              "cannot create the ONNX Runtime environment from " + path);
  OrtMemoryInfo* memoryInfo = nullptr;
  CheckStatus(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memoryInfo), kErrRuntimeLoad,
              "cannot describe CPU memory");

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
  library->env_ = env;
  library->cpuMemoryInfo_ = memoryInfo;
  RunPool::Start(library->runThreads_);
  // Published for the rest of the process and never destroyed (see the class comment).
  g_library.store(library.release(), std::memory_order_release);
  return Current()->Describe();
}

}  // namespace forecastd
