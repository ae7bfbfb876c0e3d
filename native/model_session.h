#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ort_library.h"

namespace forecastd {

// A graph input or output as ORT reports it.
struct TensorSpec {
  std::string name;
  bool isTensor = true;  // false for sequences, maps and optionals
  ONNXTensorElementDataType elementType = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> dims;           // -1 where symbolic
  std::vector<std::string> dimNames;   // the symbolic name, "" when concrete or unnamed
};

struct ModelMetadataInfo {
  std::string producerName;
  std::string graphName;
  std::string domain;
  std::string description;
  std::string graphDescription;
  int64_t version = 0;  // INT64_MAX: the ModelProto has no model_version (ONNX Runtime's way of saying so)
  std::vector<std::pair<std::string, std::string>> custom;
};

struct SessionConfig {
  int intraOpThreads = 1;
  int interOpThreads = 0;  // 0: ORT's default
  GraphOptimizationLevel optimizationLevel = ORT_ENABLE_ALL;
  ExecutionMode executionMode = ORT_SEQUENTIAL;
  std::vector<std::string> providers;  // ORT names, e.g. "CUDAExecutionProvider", in priority order
};

// An ORT session and what it says about its model. Plain C++ (no Node-API): built on a run-pool thread and
// shared (shared_ptr) by its JavaScript wrapper and every run in flight, so dispose() never frees a session
// a run is still using. ORT sessions accept concurrent Run calls from several threads.
class ModelSession {
 public:
  static std::shared_ptr<ModelSession> FromFile(const std::string& path, const SessionConfig& config);
  static std::shared_ptr<ModelSession> FromBytes(const void* data, size_t size, const SessionConfig& config);

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  const ModelMetadataInfo& metadata() const { return metadata_; }
  // ONNX Runtime threads one run of this session keeps busy (its intra-op threads, the calling thread included).
  int threads() const { return threads_; }

  // Index of the input/output named `name`, or -1.
  int InputIndex(const std::string& name) const;
  int OutputIndex(const std::string& name) const;

  // Runs the model; throws AddonError(ERR_INFERENCE) with ORT's message on failure.
  // `runOptions` may be terminated from another thread (RunOptionsSetTerminate) to stop the run early.
  std::vector<OrtPtr<OrtValue>> Run(OrtRunOptions* runOptions, const std::vector<const char*>& inputNames,
                                    const std::vector<const OrtValue*>& inputs,
                                    const std::vector<const char*>& outputNames) const;

 private:
  ModelSession() = default;
  static OrtPtr<OrtSessionOptions> BuildOptions(const SessionConfig& config, const std::string& what);
  static std::shared_ptr<ModelSession> Inspect(OrtPtr<OrtSession> session, const SessionConfig& config,
                                               const std::string& what);

  OrtPtr<OrtSession> session_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  ModelMetadataInfo metadata_;
  int threads_ = 1;
};

}  // namespace forecastd
