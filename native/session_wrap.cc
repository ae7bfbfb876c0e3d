#include "session_wrap.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "addon_error.h"
#include "addon_state.h"
#include "host_buffer.h"
#include "js_values.h"
#include "run_job.h"
#include "tensor_types.h"

namespace forecastd {

namespace {

// Largest integer a double holds exactly; dimensions beyond it cannot have come from a real shape.
constexpr double kMaxSafeInteger = 9007199254740991.0;

Napi::Array DescribeTensors(Napi::Env env, const std::vector<TensorSpec>& specs) {
  Napi::Array list = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    Napi::Object item = Napi::Object::New(env);
    DefineValue(env, item, "name", spec.name);
    DefineValue(env, item, "type", std::string(spec.isTensor ? DescribeElementType(spec.elementType).name : "unknown"));
    Napi::Array shape = Napi::Array::New(env, spec.dims.size());
    for (size_t d = 0; d < spec.dims.size(); ++d) {
      if (spec.dims[d] >= 0) {
        DefineElement(env, shape, d, Napi::Number::New(env, static_cast<double>(spec.dims[d])));
      } else {
        DefineElement(env, shape, d, Napi::String::New(env, spec.dimNames[d].empty() ? "?" : spec.dimNames[d]));
      }
    }
    DefineValue(env, item, "shape", shape);
    DefineElement(env, list, i, item);
  }
  return list;
}

Napi::Object DescribeMetadata(Napi::Env env, const ModelMetadataInfo& m) {
  Napi::Object metadata = Napi::Object::New(env);
  DefineValue(env, metadata, "producerName", m.producerName);
  DefineValue(env, metadata, "graphName", m.graphName);
  DefineValue(env, metadata, "domain", m.domain);
  DefineValue(env, metadata, "description", m.description);
  DefineValue(env, metadata, "graphDescription", m.graphDescription);
  // model_version is an int64: as a decimal string it stays exact beyond 2^53. ONNX Runtime reports INT64_MAX
  // when the ModelProto has none (PyTorch's exporter writes none): then the property is absent.
  if (m.version != std::numeric_limits<int64_t>::max()) DefineValue(env, metadata, "version", std::to_string(m.version));
  Napi::Object custom = Napi::Object::New(env);
  for (const auto& [key, value] : m.custom) DefineValue(env, custom, key.c_str(), value);
  DefineValue(env, metadata, "custom", custom);
  return metadata;
}

std::string ShapeText(const std::vector<double>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    const double d = shape[i];
    text += (i ? ", " : "");
    text += (d >= 0 && d <= kMaxSafeInteger && d == std::floor(d)) ? std::to_string(static_cast<int64_t>(d))
                                                                     : std::to_string(d);
  }
  return text + "]";
}

// What run() read from JavaScript for one input, before any of it is acted upon.
struct RawInput {
  std::string name;
  const TensorSpec* spec;
  Napi::Value array;
  std::vector<double> dims;
};

}  // namespace

Napi::Function SessionWrap::DefineClass(Napi::Env env) {
  return ObjectWrap<SessionWrap>::DefineClass(env, "Session",
                                              {InstanceMethod<&SessionWrap::Run>("run"),
                                               InstanceMethod<&SessionWrap::Dispose>("dispose")});
}

SessionWrap::SessionWrap(const Napi::CallbackInfo& info) : ObjectWrap<SessionWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(env, "Session objects are created by loadSession()");
  }
  session_ = *info[0].As<Napi::External<std::shared_ptr<ModelSession>>>().Data();
  // Defined, not assigned: an assignment would run any setter an embedder put on the prototype chain.
  Napi::Object self = info.This().As<Napi::Object>();
  DefineValue(env, self, "inputs", DescribeTensors(env, session_->inputs()));
  DefineValue(env, self, "outputs", DescribeTensors(env, session_->outputs()));
  DefineValue(env, self, "metadata", DescribeMetadata(env, session_->metadata()));
}

Napi::Value SessionWrap::Dispose(const Napi::CallbackInfo& info) {
  // Runs in flight keep their own reference; the ORT session is released when the last of them completes.
  session_.reset();
  return info.Env().Undefined();
}

// run(inputNames: string[], inputs: TypedArray[], shapes: number[][], outputNames: string[]): Promise<Output[]>
// The TypeScript wrapper validates first with friendlier messages; these checks keep native memory safe
// whatever JavaScript passes. Reading an element of those arrays can run JavaScript (a getter), which may
// dispose this session or reshape the arrays: so the session is held by a local reference for the whole call,
// every value is read exactly once, and input memory is copied only after the last value was read.
Napi::Value SessionWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, kErrInference, "cannot start the run", [&]() -> Napi::Value {
    const std::shared_ptr<ModelSession> session = session_;
    if (!session) throw AddonError(kErrDisposed, "the session was disposed; load the model again to run it");
    if (info.Length() != 4 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
      throw TypeErrorOf("run(inputNames, inputs, shapes, outputNames) expects four arrays");
    }
    Napi::Array names = info[0].As<Napi::Array>();
    Napi::Array arrays = info[1].As<Napi::Array>();
    Napi::Array shapes = info[2].As<Napi::Array>();
    Napi::Array outputList = info[3].As<Napi::Array>();
    const auto& specs = session->inputs();
    const uint32_t count = names.Length();
    if (arrays.Length() != count || shapes.Length() != count) {
      throw TypeErrorOf("inputNames, inputs and shapes must have the same length");
    }
    if (count > specs.size()) {
      throw TypeErrorOf("run() got " + std::to_string(count) + " inputs; the model has " + std::to_string(specs.size()));
    }
    const uint32_t outputCount = outputList.Length();
    if (outputCount > session->outputs().size()) {
      throw TypeErrorOf("run() asked for " + std::to_string(outputCount) + " outputs; the model has " +
                        std::to_string(session->outputs().size()));
    }

    // 1. Read every JavaScript value (getters may run here) into plain C++ data.
    std::vector<bool> seen(specs.size(), false);
    std::vector<RawInput> raw;
    raw.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
      Napi::Value nameValue = names.Get(i);
      if (!nameValue.IsString()) throw TypeErrorOf("input names must be strings");
      std::string name = nameValue.As<Napi::String>().Utf8Value();
      const int index = session->InputIndex(name);
      if (index < 0) throw TypeErrorOf("the model has no input named " + name);
      if (seen[index]) throw TypeErrorOf("input " + name + " is given twice");
      seen[index] = true;
      const TensorSpec& spec = specs[index];
      if (!spec.isTensor || DescribeElementType(spec.elementType).byteSize == 0) {
        throw TypeErrorOf("input " + name + " has type " + DescribeElementType(spec.elementType).name +
                          ", which forecastd cannot feed");
      }
      Napi::Value arrayValue = arrays.Get(i);
      Napi::Value shapeValue = shapes.Get(i);
      if (!shapeValue.IsArray()) throw TypeErrorOf("the shape of input " + name + " must be an array");
      Napi::Array shapeArray = shapeValue.As<Napi::Array>();
      const uint32_t rank = shapeArray.Length();
      if (rank != spec.dims.size()) {
        throw RangeErrorOf("input " + name + " has rank " + std::to_string(spec.dims.size()) + ", got a shape of rank " +
                           std::to_string(rank));
      }
      std::vector<double> dims(rank);
      for (uint32_t d = 0; d < rank; ++d) {
        Napi::Value dim = shapeArray.Get(d);
        dims[d] = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
      }
      raw.push_back(RawInput{std::move(name), &spec, arrayValue, std::move(dims)});
    }
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!seen[i]) throw TypeErrorOf("input " + specs[i].name + " is missing");
    }
    std::vector<std::string> outputNames;
    for (uint32_t i = 0; i < outputCount; ++i) {
      Napi::Value nameValue = outputList.Get(i);
      if (!nameValue.IsString()) throw TypeErrorOf("output names must be strings");
      std::string name = nameValue.As<Napi::String>().Utf8Value();
      const int index = session->OutputIndex(name);
      if (index < 0) throw TypeErrorOf("the model has no output named " + name);
      const TensorSpec& spec = session->outputs()[index];
      if (!spec.isTensor || DescribeElementType(spec.elementType).byteSize == 0) {
        throw TypeErrorOf("output " + name + " has type " + DescribeElementType(spec.elementType).name +
                          ", which forecastd cannot return");
      }
      outputNames.push_back(std::move(name));
    }
    if (outputNames.empty()) throw TypeErrorOf("run() needs at least one output name");

    // 2. No JavaScript runs from here on: check the shapes and take the input memory.
    std::vector<RunJob::Input> inputs;
    inputs.reserve(raw.size());
    for (RawInput& in : raw) {
      const TensorSpec& spec = *in.spec;
      const ElementTypeInfo expected = DescribeElementType(spec.elementType);
      std::vector<int64_t> shape(in.dims.size());
      uint64_t elements = 1;
      bool tooLarge = false;
      for (size_t d = 0; d < in.dims.size(); ++d) {
        const double value = in.dims[d];
        if (!(value >= 0) || value > kMaxSafeInteger || value != std::floor(value)) {
          throw RangeErrorOf("the shape of input " + in.name + " must hold integers from 0 to 2^53-1, got " +
                             ShapeText(in.dims));
        }
        shape[d] = static_cast<int64_t>(value);
        if (spec.dims[d] >= 0 && spec.dims[d] != shape[d]) {
          throw RangeErrorOf("input " + in.name + " needs dimension " + std::to_string(d) + " = " +
                             std::to_string(spec.dims[d]) + ", got shape " + ShapeText(in.dims));
        }
        const auto dim = static_cast<uint64_t>(shape[d]);
        if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / dim) tooLarge = true;
        elements *= dim;
      }
      if (!in.array.IsTypedArray()) throw TypeErrorOf("input " + in.name + " must be a typed array");
      napi_typedarray_type arrayType;
      size_t length = 0;
      void* data = nullptr;
      NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, in.array, &arrayType, &length, &data, nullptr, nullptr),
                           Napi::Value());
      if (arrayType != expected.array) {
        throw TypeErrorOf("input " + in.name + " has element type " + expected.name + " and needs a " +
                          TypedArrayName(expected.array) + ", got a " + TypedArrayName(arrayType));
      }
      if (tooLarge || elements != length) {
        throw RangeErrorOf("input " + in.name + " has " + std::to_string(length) + " elements, shape " +
                           ShapeText(in.dims) + " needs " + (tooLarge ? std::string("more than 2^64") : std::to_string(elements)));
      }
      const size_t bytes = length * expected.byteSize;
      std::shared_ptr<HostBuffer> memory = HostBuffer::Owning(data, bytes);
      if (memory == nullptr) {
        memory = HostBuffer::CopyOf(data, bytes);
        data = memory->data();
      }
      inputs.push_back(RunJob::Input{std::move(in.name), std::move(memory), data, bytes, std::move(shape),
                                     spec.elementType});
    }

    auto job = std::make_unique<RunJob>(env, session, std::move(inputs), std::move(outputNames));
    Napi::Promise promise = job->promise();
    StateOf(env).completions->Dispatch(env, std::move(job));
    return promise;
  });
}

}  // namespace forecastd
