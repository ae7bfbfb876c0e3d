#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <napi.h>

#include "addon_error.h"
#include "job.h"
#include "model_session.h"

namespace forecastd {

// One inference. Inputs are not copied: each typed array stays referenced (pinned) until Complete and ORT
// reads its memory in place. Outputs are not copied either: they reach JavaScript as external ArrayBuffers
// over ORT's memory, whose finalizers release the OrtValues. The job holds the session by shared_ptr, so a
// dispose() while it runs cannot free the session under it.
class RunJob : public Job {
 public:
  struct Input {
    std::string name;
    Napi::Reference<Napi::Value> pin;
    void* data;
    size_t byteLength;
    std::vector<int64_t> shape;
    ONNXTensorElementDataType elementType;
  };

  RunJob(Napi::Env env, std::shared_ptr<ModelSession> session, std::vector<Input> inputs,
         std::vector<std::string> outputNames);

  Napi::Promise promise() const { return deferred_.Promise(); }
  void Execute() override;
  void Complete(Napi::Env env) override;

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
  std::vector<Output> outputs_;
  std::optional<AddonError> error_;
};

}  // namespace forecastd
