#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <napi.h>

#include "addon_error.h"
#include "host_buffer.h"
#include "job.h"
#include "model_session.h"

namespace forecastd {

// One inference. Inputs live in memory the addon owns (HostBuffer): copied from JavaScript's typed arrays on the
// JavaScript thread before the job is queued, or held as they are when the caller built them in memory from
// allocateTensorData(). Nothing JavaScript can resize, transfer or collect is read on a run thread.
// Outputs up to kCopyOutputsUpTo bytes are copied into ordinary ArrayBuffers (the ORT memory is released at
// once); larger ones reach JavaScript as external ArrayBuffers over ORT's memory, released by their finalizers.
// The job holds the session by shared_ptr, so a dispose() while it runs cannot free the session under it.
class RunJob : public Job {
 public:
  struct Input {
    std::string name;
    std::shared_ptr<HostBuffer> memory;
    void* data;  // inside `memory`
    size_t byteLength;
    std::vector<int64_t> shape;
    ONNXTensorElementDataType elementType;
  };

  // Small outputs are copied: an external buffer would keep a whole batch's ORT allocation alive until V8
  // collects it, and a copy this small costs less than creating one.
  static constexpr size_t kCopyOutputsUpTo = 64 * 1024;

  RunJob(Napi::Env env, std::shared_ptr<ModelSession> session, std::vector<Input> inputs,
         std::vector<std::string> outputNames);

  Napi::Promise promise() const { return deferred_.Promise(); }
  void Execute() override;
  void Complete(Napi::Env env) override;
  void Terminate() override;
  unsigned Threads() const override { return static_cast<unsigned>(session_->threads()); }

 private:
  struct Output {
    OrtPtr<OrtValue> value;
    ONNXTensorElementDataType elementType;
    std::vector<int64_t> shape;
    void* data;
    size_t elementCount;
  };

  Napi::Value WrapOutput(Napi::Env env, Output& output, size_t index);
  bool AliasesEarlierMemory(const Output& output, size_t index) const;

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ModelSession> session_;
  std::vector<Input> inputs_;
  std::vector<std::string> outputNames_;
  OrtPtr<OrtRunOptions> runOptions_;
  std::vector<Output> outputs_;
  std::optional<AddonError> error_;
};

}  // namespace forecastd
