#pragma once

#include <memory>
#include <optional>
#include <string>

#include <napi.h>

#include "addon_error.h"
#include "host_buffer.h"
#include "job.h"
#include "model_session.h"

namespace forecastd {

// Creates an ORT session (parsing and optimizing the model can take a while) on the run pool, then resolves
// its promise with a Session object. Model bytes are copied into addon-owned memory on the JavaScript thread
// (unless they already live there): JavaScript may resize, transfer or drop its Uint8Array while the load waits.
class LoadJob : public Job {
 public:
  LoadJob(Napi::Env env, std::string path, SessionConfig config);
  LoadJob(Napi::Env env, Napi::TypedArray bytes, SessionConfig config);

  Napi::Promise promise() const { return deferred_.Promise(); }
  void Execute() override;
  void Complete(Napi::Env env) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  std::shared_ptr<HostBuffer> bytes_;  // null when loading from path_
  const void* data_ = nullptr;         // inside bytes_
  size_t byteLength_ = 0;
  SessionConfig config_;
  std::shared_ptr<ModelSession> session_;
  std::optional<AddonError> error_;
};

}  // namespace forecastd
