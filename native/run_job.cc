#include "run_job.h"

#include <cstring>

#include "js_values.h"
#include "tensor_types.h"

namespace forecastd {

namespace {

void ReleaseOutputValue(napi_env, void*, void* hint) { OrtPtr<OrtValue> owned(static_cast<OrtValue*>(hint)); }

bool Overlaps(const void* a, size_t aBytes, const void* b, size_t bBytes) {
  auto* pa = static_cast<const char*>(a);
  auto* pb = static_cast<const char*>(b);
  return pa < pb + bBytes && pb < pa + aBytes;
}

}  // namespace

RunJob::RunJob(Napi::Env env, std::shared_ptr<ModelSession> session, std::vector<Input> inputs,
               std::vector<std::string> outputNames)
    : deferred_(Napi::Promise::Deferred::New(env)),
      session_(std::move(session)),
      inputs_(std::move(inputs)),
      outputNames_(std::move(outputNames)) {
  OrtRunOptions* raw = nullptr;
  CheckStatus(Ort().CreateRunOptions(&raw), kErrInference, "cannot create run options");
  runOptions_.reset(raw);
}

void RunJob::Terminate() {
  // Thread-safe in ORT: the run stops at its next node and fails with "Exiting due to terminate flag".
  if (OrtStatus* status = Ort().RunOptionsSetTerminate(runOptions_.get())) Ort().ReleaseStatus(status);
}

void RunJob::Execute() {
  try {
    const OrtApi& api = Ort();
    std::vector<OrtPtr<OrtValue>> tensors;
    std::vector<const OrtValue*> values;
    std::vector<const char*> inputNames;
    for (Input& input : inputs_) {
      OrtValue* raw = nullptr;
      CheckStatus(api.CreateTensorWithDataAsOrtValue(OrtLibrary::Current()->cpuMemoryInfo(), input.data,
                                                     input.byteLength, input.shape.data(), input.shape.size(),
                                                     input.elementType, &raw),
                  kErrInference, "cannot wrap input " + input.name);
      tensors.emplace_back(raw);
      values.push_back(raw);
      inputNames.push_back(input.name.c_str());
    }
    std::vector<const char*> outputNames;
    for (const std::string& name : outputNames_) outputNames.push_back(name.c_str());

    std::vector<OrtPtr<OrtValue>> results = session_->Run(runOptions_.get(), inputNames, values, outputNames);

    for (size_t i = 0; i < results.size(); ++i) {
      Output output{std::move(results[i]), ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED, {}, nullptr, 0};
      const std::string context = "cannot read output " + outputNames_[i];
      int isTensor = 0;
      CheckStatus(api.IsTensor(output.value.get(), &isTensor), kErrInference, context);
      if (!isTensor) throw AddonError(kErrInference, context + ": it is not a tensor");
      OrtTensorTypeAndShapeInfo* rawInfo = nullptr;
      CheckStatus(api.GetTensorTypeAndShape(output.value.get(), &rawInfo), kErrInference, context);
      OrtPtr<OrtTensorTypeAndShapeInfo> info(rawInfo);
      CheckStatus(api.GetTensorElementType(info.get(), &output.elementType), kErrInference, context);
      size_t rank = 0;
      CheckStatus(api.GetDimensionsCount(info.get(), &rank), kErrInference, context);
      output.shape.resize(rank);
      if (rank > 0) CheckStatus(api.GetDimensions(info.get(), output.shape.data(), rank), kErrInference, context);
      CheckStatus(api.GetTensorShapeElementCount(info.get(), &output.elementCount), kErrInference, context);
      if (DescribeElementType(output.elementType).byteSize == 0) {
        throw AddonError(kErrInference, context + ": element type " +
                                            DescribeElementType(output.elementType).name +
                                            " has no numeric typed array");
      }
      CheckStatus(api.GetTensorMutableData(output.value.get(), &output.data), kErrInference, context);
      outputs_.push_back(std::move(output));
    }
  } catch (const AddonError& e) {
    error_ = e;
    outputs_.clear();
  } catch (const std::exception& e) {
    error_ = AddonError(kErrInference, std::string("inference failed: ") + e.what());
    outputs_.clear();
  }
}

bool RunJob::AliasesEarlierMemory(const Output& output, size_t index) const {
  const size_t bytes = output.elementCount * DescribeElementType(output.elementType).byteSize;
  for (const Input& input : inputs_) {
    if (Overlaps(output.data, bytes, input.data, input.byteLength)) return true;
  }
  for (size_t i = 0; i < index; ++i) {
    const Output& other = outputs_[i];
    if (Overlaps(output.data, bytes, other.data, other.elementCount * DescribeElementType(other.elementType).byteSize)) {
      return true;
    }
  }
  return false;
}

Napi::Value RunJob::WrapOutput(Napi::Env env, Output& output, size_t index) {
  const ElementTypeInfo type = DescribeElementType(output.elementType);
  const size_t bytes = output.elementCount * type.byteSize;
  napi_value buffer = nullptr;
  bool copy = bytes <= kCopyOutputsUpTo || AliasesEarlierMemory(output, index);
#if defined(NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED)
  copy = true;  // built for a runtime with a V8 sandbox (Electron): external memory is refused outright
#else
  if (!copy) {
    napi_status status = napi_create_external_arraybuffer(env, output.data, bytes, ReleaseOutputValue,
                                                          output.value.get(), &buffer);
    if (status == napi_ok) {
      output.value.release();  // now owned by the ArrayBuffer's finalizer
    } else if (status == napi_no_external_buffers_allowed) {
      copy = true;  // runtimes with a V8 sandbox refuse external memory
    } else {
      NAPI_THROW_IF_FAILED(env, status, Napi::Value());
    }
  }
#endif
  if (copy) {
    Napi::ArrayBuffer copied = Napi::ArrayBuffer::New(env, bytes);
    if (bytes > 0) std::memcpy(copied.Data(), output.data, bytes);
    buffer = copied;
    output.value.reset();
  }
  napi_value array = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, type.array, output.elementCount, buffer, 0, &array),
                       Napi::Value());

  Napi::Array shape = Napi::Array::New(env, output.shape.size());
  for (size_t d = 0; d < output.shape.size(); ++d) {
    DefineElement(env, shape, d, Napi::Number::New(env, static_cast<double>(output.shape[d])));
  }
  Napi::Object tensor = Napi::Object::New(env);
  DefineValue(env, tensor, "name", outputNames_[index]);
  DefineValue(env, tensor, "type", std::string(type.name));
  DefineValue(env, tensor, "shape", shape);
  DefineValue(env, tensor, "data", array);
  return tensor;
}

void RunJob::Complete(Napi::Env env) {
  try {
    if (error_) {
      inputs_.clear();
      deferred_.Reject(MakeJsError(env, *error_));
      return;
    }
    Napi::Array result = Napi::Array::New(env, outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) DefineElement(env, result, i, WrapOutput(env, outputs_[i], i));
    // How long the run itself took on its run thread (no queueing, no hand-over): what the batcher's cost model
    // reads. Not enumerable, so the result still compares equal to a plain array of its outputs.
    napi_property_descriptor execute{"executeMs", nullptr, nullptr, nullptr, nullptr,
                                     Napi::Number::New(env, static_cast<double>(executeNanos) / 1e6), napi_default,
                                     nullptr};
    NAPI_THROW_IF_FAILED_VOID(env, napi_define_properties(env, result, 1, &execute));
    // Unpinned only after wrapping: an output that aliases an input (an Identity graph) was copied from it.
    inputs_.clear();
    deferred_.Resolve(result);
  } catch (const Napi::Error& e) {
    inputs_.clear();
    deferred_.Reject(e.Value());
  } catch (const std::exception& e) {
    inputs_.clear();
    deferred_.Reject(MakeJsError(env, FromStdException(e, kErrInference, "cannot return the outputs")));
  }
}

}  // namespace forecastd
