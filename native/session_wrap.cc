#include "session_wrap.h"

#include "addon_error.h"
#include "addon_state.h"
#include "run_job.h"
#include "tensor_types.h"

namespace forecastd {

namespace {

Napi::Array DescribeTensors(Napi::Env env, const std::vector<TensorSpec>& specs) {
  Napi::Array list = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    Napi::Object item = Napi::Object::New(env);
    item.Set("name", spec.name);
    item.Set("type", spec.isTensor ? DescribeElementType(spec.elementType).name : "unknown");
    Napi::Array shape = Napi::Array::New(env, spec.dims.size());
    for (size_t d = 0; d < spec.dims.size(); ++d) {
      if (spec.dims[d] >= 0) {
        shape.Set(d, Napi::Number::New(env, static_cast<double>(spec.dims[d])));
      } else {
        shape.Set(d, Napi::String::New(env, spec.dimNames[d].empty() ? "?" : spec.dimNames[d]));
      }
    }
    item.Set("shape", shape);
    list.Set(i, item);
  }
  return list;
}

Napi::Object DescribeMetadata(Napi::Env env, const ModelMetadataInfo& m) {
  Napi::Object metadata = Napi::Object::New(env);
  metadata.Set("producerName", m.producerName);
  metadata.Set("graphName", m.graphName);
  metadata.Set("domain", m.domain);
  metadata.Set("description", m.description);
  metadata.Set("graphDescription", m.graphDescription);
  metadata.Set("version", Napi::Number::New(env, static_cast<double>(m.version)));
  Napi::Object custom = Napi::Object::New(env);
  for (const auto& [key, value] : m.custom) custom.Set(key, value);
  metadata.Set("custom", custom);
  return metadata;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

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
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("inputs", DescribeTensors(env, session_->inputs()));
  self.Set("outputs", DescribeTensors(env, session_->outputs()));
  self.Set("metadata", DescribeMetadata(env, session_->metadata()));
}

Napi::Value SessionWrap::Dispose(const Napi::CallbackInfo& info) {
  // Runs in flight keep their own reference; the ORT session is released when the last of them completes.
  session_.reset();
  return info.Env().Undefined();
}

// run(inputNames: string[], inputs: TypedArray[], shapes: number[][], outputNames: string[]): Promise<Output[]>
// The TypeScript wrapper validates first with friendlier messages; these checks keep native memory safe
// whatever JavaScript passes.
Napi::Value SessionWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, [&]() -> Napi::Value {
    if (!session_) throw AddonError(kErrDisposed, "the session was disposed; load the model again to run it");
    if (info.Length() != 4 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
      throw TypeErrorOf("run(inputNames, inputs, shapes, outputNames) expects four arrays");
    }
    Napi::Array names = info[0].As<Napi::Array>();
    Napi::Array arrays = info[1].As<Napi::Array>();
    Napi::Array shapes = info[2].As<Napi::Array>();
    Napi::Array outputList = info[3].As<Napi::Array>();
    const auto& specs = session_->inputs();
    if (names.Length() != arrays.Length() || names.Length() != shapes.Length()) {
      throw TypeErrorOf("inputNames, inputs and shapes must have the same length");
    }
    std::vector<bool> seen(specs.size(), false);
    std::vector<RunJob::Input> inputs;
    inputs.reserve(names.Length());
    for (uint32_t i = 0; i < names.Length(); ++i) {
      Napi::Value nameValue = names.Get(i);
      if (!nameValue.IsString()) throw TypeErrorOf("input names must be strings");
      std::string name = nameValue.As<Napi::String>().Utf8Value();
      const int index = session_->InputIndex(name);
      if (index < 0) throw TypeErrorOf("the model has no input named " + name);
      if (seen[index]) throw TypeErrorOf("input " + name + " is given twice");
      seen[index] = true;
      const TensorSpec& spec = specs[index];
      const ElementTypeInfo expected = DescribeElementType(spec.elementType);
      if (!spec.isTensor || expected.byteSize == 0) {
        throw TypeErrorOf("input " + name + " has type " + expected.name + ", which forecastd cannot feed");
      }

      Napi::Value arrayValue = arrays.Get(i);
      if (!arrayValue.IsTypedArray()) throw TypeErrorOf("input " + name + " must be a typed array");
      napi_typedarray_type arrayType;
      size_t length = 0;
      void* data = nullptr;
      NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, arrayValue, &arrayType, &length, &data, nullptr, nullptr),
                           Napi::Value());
      if (arrayType != expected.array) {
        throw TypeErrorOf("input " + name + " has element type " + expected.name + " and needs a " +
                          TypedArrayName(expected.array) + ", got a " + TypedArrayName(arrayType));
      }

      Napi::Value shapeValue = shapes.Get(i);
      if (!shapeValue.IsArray()) throw TypeErrorOf("the shape of input " + name + " must be an array");
      Napi::Array shapeArray = shapeValue.As<Napi::Array>();
      std::vector<int64_t> shape(shapeArray.Length());
      double elements = 1;
      for (uint32_t d = 0; d < shape.size(); ++d) {
        Napi::Value dim = shapeArray.Get(d);
        const double value = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
        if (!(value >= 0) || value != static_cast<double>(static_cast<int64_t>(value))) {
          throw RangeErrorOf("the shape of input " + name + " must hold non-negative integers");
        }
        shape[d] = static_cast<int64_t>(value);
        elements *= value;
      }
      if (shape.size() != spec.dims.size()) {
        throw RangeErrorOf("input " + name + " has rank " + std::to_string(spec.dims.size()) + ", got shape " +
                           ShapeText(shape));
      }
      for (size_t d = 0; d < shape.size(); ++d) {
        if (spec.dims[d] >= 0 && spec.dims[d] != shape[d]) {
          throw RangeErrorOf("input " + name + " needs dimension " + std::to_string(d) + " = " +
                             std::to_string(spec.dims[d]) + ", got shape " + ShapeText(shape));
        }
      }
      if (elements != static_cast<double>(length)) {
        throw RangeErrorOf("input " + name + " has " + std::to_string(length) + " elements, shape " +
                           ShapeText(shape) + " needs " + std::to_string(static_cast<int64_t>(elements)));
      }
      inputs.push_back(RunJob::Input{std::move(name), Napi::Persistent(arrayValue), data,
                                     length * expected.byteSize, std::move(shape), spec.elementType});
    }
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!seen[i]) throw TypeErrorOf("input " + specs[i].name + " is missing");
    }

    std::vector<std::string> outputNames;
    for (uint32_t i = 0; i < outputList.Length(); ++i) {
      Napi::Value nameValue = outputList.Get(i);
      if (!nameValue.IsString()) throw TypeErrorOf("output names must be strings");
      std::string name = nameValue.As<Napi::String>().Utf8Value();
      const int index = session_->OutputIndex(name);
      if (index < 0) throw TypeErrorOf("the model has no output named " + name);
      const TensorSpec& spec = session_->outputs()[index];
      if (!spec.isTensor || DescribeElementType(spec.elementType).byteSize == 0) {
        throw TypeErrorOf("output " + name + " has type " + DescribeElementType(spec.elementType).name +
                          ", which forecastd cannot return");
      }
      outputNames.push_back(std::move(name));
    }
    if (outputNames.empty()) throw TypeErrorOf("run() needs at least one output name");

    auto job = std::make_unique<RunJob>(env, session_, std::move(inputs), std::move(outputNames));
    Napi::Promise promise = job->promise();
    StateOf(env).completions->Dispatch(env, std::move(job));
    return promise;
  });
}

}  // namespace forecastd
