#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "onnxruntime_c_api.h"

namespace forecastd {

// The OrtApi table of the library chosen for this process. Valid once OrtLibrary::Configure succeeded; the
// library is never unloaded, so the pointer stays valid for the life of the process.
const OrtApi& Ort();

// Releases any ORT handle with its matching Release* function, so every handle can live in a unique_ptr.
struct OrtReleaser {
  void operator()(OrtEnv* p) const { Ort().ReleaseEnv(p); }
  void operator()(OrtStatus* p) const { Ort().ReleaseStatus(p); }
  void operator()(OrtSession* p) const { Ort().ReleaseSession(p); }
  void operator()(OrtSessionOptions* p) const { Ort().ReleaseSessionOptions(p); }
  void operator()(OrtValue* p) const { Ort().ReleaseValue(p); }
  void operator()(OrtMemoryInfo* p) const { Ort().ReleaseMemoryInfo(p); }
  void operator()(OrtTypeInfo* p) const { Ort().ReleaseTypeInfo(p); }
  void operator()(OrtTensorTypeAndShapeInfo* p) const { Ort().ReleaseTensorTypeAndShapeInfo(p); }
  void operator()(OrtModelMetadata* p) const { Ort().ReleaseModelMetadata(p); }
  void operator()(OrtCUDAProviderOptionsV2* p) const { Ort().ReleaseCUDAProviderOptions(p); }
  void operator()(OrtTensorRTProviderOptionsV2* p) const { Ort().ReleaseTensorRTProviderOptions(p); }
  void operator()(OrtRunOptions* p) const { Ort().ReleaseRunOptions(p); }
};

template <typename T>
using OrtPtr = std::unique_ptr<T, OrtReleaser>;

// Throws AddonError(code, context + ": " + ORT's message, ortCode = ORT's error code name) when `status` is an
// error; releases it either way.
void CheckStatus(OrtStatus* status, const char* code, const std::string& context);

// "ORT_INVALID_ARGUMENT" for ORT_INVALID_ARGUMENT, and so on.
const char* OrtErrorCodeName(OrtErrorCode code);

// Process exit, announced from JavaScript ('exit' event of the main thread, before any atexit handler or static
// destructor runs): stops the run pool (running jobs are terminated and waited for up to 2 s). Past that bound,
// leaves at once with _exit(code), without ONNX Runtime's static destructors, which would crash under a thread
// still inside the library.
void StopForExit(int code);

// The ONNX Runtime shared library, loaded with dlopen at run time (the addon never links it at build time, so
// one binary works with the CPU library inside onnxruntime-node or a GPU build chosen by the user).
// One per process, shared by every worker thread; it is never unloaded and its OrtEnv is never released:
// at process exit the library may already be gone, and ORT's own teardown runs from its static destructors.
// Before those run, StopForExit() stops the run pool (called from the 'exit' event; an atexit handler registered
// after the library loaded does the same for exits that skip that event, as far as ORT's statics registered
// later allow).
class OrtLibrary {
 public:
  struct Snapshot {
    std::string path;
    std::string version;
    unsigned runThreads;
    std::vector<std::string> providers;
  };

  // Loads `path` (first call) or checks that `path` is the one already loaded. `runThreads` 0 = no preference
  // (use `defaultRunThreads` on first load); a different explicit value after the first load is an error.
  static Snapshot Configure(const std::string& path, unsigned runThreads, unsigned defaultRunThreads);

  // The configured library, or nullptr before Configure succeeded.
  static const OrtLibrary* Current();

  // The snapshot of the configured library; only valid when Current() is not null.
  Snapshot Describe() const;

  OrtEnv* env() const { return env_; }
  const OrtMemoryInfo* cpuMemoryInfo() const { return cpuMemoryInfo_; }
  const std::string& path() const { return path_; }
  const std::string& version() const { return version_; }
  const std::vector<std::string>& providers() const { return providers_; }

  OrtLibrary(const OrtLibrary&) = delete;
  OrtLibrary& operator=(const OrtLibrary&) = delete;

 private:
  OrtLibrary() = default;

  std::string path_;
  std::string version_;
  unsigned runThreads_ = 0;
  std::vector<std::string> providers_;
  OrtEnv* env_ = nullptr;                          // intentionally never released (see class comment)
  const OrtMemoryInfo* cpuMemoryInfo_ = nullptr;   // likewise, lives as long as the process
};

}  // namespace forecastd
