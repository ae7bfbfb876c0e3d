#include "model_session.h"

#include <cstring>

#include "addon_error.h"

namespace forecastd {

namespace {

// A string ORT allocated with the default allocator, freed with it.
class AllocatedString {
 public:
  explicit AllocatedString(OrtAllocator* allocator) : allocator_(allocator) {}
  ~AllocatedString() {
    if (value_ != nullptr) allocator_->Free(allocator_, value_);
  }
  AllocatedString(const AllocatedString&) = delete;
  AllocatedString& operator=(const AllocatedString&) = delete;
  char** out() { return &value_; }
  std::string str() const { return value_ != nullptr ? std::string(value_) : std::string(); }

 private:
  OrtAllocator* allocator_;
  char* value_ = nullptr;
};

OrtAllocator* DefaultAllocator() {
  OrtAllocator* allocator = nullptr;
  CheckStatus(Ort().GetAllocatorWithDefaultOptions(&allocator), kErrModelLoad, "cannot get the ORT allocator");
  return allocator;
}

TensorSpec DescribeValue(std::string name, const OrtTypeInfo* typeInfo, const std::string& what) {
  TensorSpec spec;
  spec.name = std::move(name);
  ONNXType onnxType = ONNX_TYPE_UNKNOWN;
  CheckStatus(Ort().GetOnnxTypeFromTypeInfo(typeInfo, &onnxType), kErrModelLoad, what);
  if (onnxType != ONNX_TYPE_TENSOR) {
    spec.isTensor = false;
    return spec;
  }
  const OrtTensorTypeAndShapeInfo* tensorInfo = nullptr;  // owned by typeInfo
  CheckStatus(Ort().CastTypeInfoToTensorInfo(typeInfo, &tensorInfo), kErrModelLoad, what);
  CheckStatus(Ort().GetTensorElementType(tensorInfo, &spec.elementType), kErrModelLoad, what);
  size_t rank = 0;
  CheckStatus(Ort().GetDimensionsCount(tensorInfo, &rank), kErrModelLoad, what);
  spec.dims.resize(rank);
  std::vector<const char*> names(rank, nullptr);
  if (rank > 0) {
    CheckStatus(Ort().GetDimensions(tensorInfo, spec.dims.data(), rank), kErrModelLoad, what);
    CheckStatus(Ort().GetSymbolicDimensions(tensorInfo, names.data(), rank), kErrModelLoad, what);
  }
  for (const char* n : names) spec.dimNames.emplace_back(n != nullptr ? n : "");
  return spec;
}

// The short name SessionOptionsAppendExecutionProvider expects for an ORT provider name.
std::string ShortProviderName(const std::string& provider) {
  static const std::pair<const char*, const char*> kKnown[] = {
      {"DmlExecutionProvider", "DML"},         {"QNNExecutionProvider", "QNN"},
      {"OpenVINOExecutionProvider", "OpenVINO"}, {"SNPEExecutionProvider", "SNPE"},
      {"XnnpackExecutionProvider", "XNNPACK"}, {"WebNNExecutionProvider", "WEBNN"},
      {"WebGpuExecutionProvider", "WebGPU"},   {"AzureExecutionProvider", "AZURE"},
      {"JsExecutionProvider", "JS"},           {"VitisAIExecutionProvider", "VitisAI"},
      {"CoreMLExecutionProvider", "CoreML"},
  };
  for (const auto& [full, shortName] : kKnown) {
    if (provider == full) return shortName;
  }
  const std::string suffix = "ExecutionProvider";
  if (provider.size() > suffix.size() && provider.compare(provider.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return provider.substr(0, provider.size() - suffix.size());
  }
  return provider;
}

void AppendProvider(OrtSessionOptions* options, const std::string& provider, const std::string& what) {
  const OrtApi& api = Ort();
  const OrtLibrary* library = OrtLibrary::Current();
  const std::string context = what + ": execution provider " + provider + " is listed by " + library->path() +
                              " (ONNX Runtime " + library->version() +
                              ") but cannot be enabled on this machine (its provider library or the device "
                              "runtime it needs is missing); use executionProviders [\"cpu\"] or install them";
  if (provider == "CPUExecutionProvider") return;  // always present, always last in ORT's list

  // Providers registered as plugin libraries are reached through their devices (the V2 API).
  const OrtEpDevice* const* devices = nullptr;
  size_t deviceCount = 0;
  if (OrtStatus* status = api.GetEpDevices(OrtLibrary::Current()->env(), &devices, &deviceCount)) {
    api.ReleaseStatus(status);
    deviceCount = 0;
  }
  std::vector<const OrtEpDevice*> matching;
  for (size_t i = 0; i < deviceCount; ++i) {
    const char* name = api.EpDevice_EpName(devices[i]);
    if (name != nullptr && provider == name) matching.push_back(devices[i]);
  }
  if (!matching.empty()) {
    CheckStatus(api.SessionOptionsAppendExecutionProvider_V2(options, OrtLibrary::Current()->env(), matching.data(),
                                                             matching.size(), nullptr, nullptr, 0),
                kErrModelLoad, context);
    return;
  }

  if (provider == "CUDAExecutionProvider") {
    OrtCUDAProviderOptionsV2* raw = nullptr;
    CheckStatus(api.CreateCUDAProviderOptions(&raw), kErrModelLoad, context);
    OrtPtr<OrtCUDAProviderOptionsV2> cuda(raw);
    CheckStatus(api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda.get()), kErrModelLoad, context);
    return;
  }
  if (provider == "TensorrtExecutionProvider") {
    OrtTensorRTProviderOptionsV2* raw = nullptr;
    CheckStatus(api.CreateTensorRTProviderOptions(&raw), kErrModelLoad, context);
    OrtPtr<OrtTensorRTProviderOptionsV2> tensorrt(raw);
    CheckStatus(api.SessionOptionsAppendExecutionProvider_TensorRT_V2(options, tensorrt.get()), kErrModelLoad,
                context);
    return;
  }
  CheckStatus(api.SessionOptionsAppendExecutionProvider(options, ShortProviderName(provider).c_str(), nullptr,
                                                        nullptr, 0),
              kErrModelLoad, context);
}

}  // namespace

OrtPtr<OrtSessionOptions> ModelSession::BuildOptions(const SessionConfig& config, const std::string& what) {
  const OrtApi& api = Ort();
  const OrtLibrary* library = OrtLibrary::Current();
  for (const std::string& provider : config.providers) {
    bool available = false;
    for (const std::string& p : library->providers()) available = available || p == provider;
    if (!available) {
      std::string list;
      for (const std::string& p : library->providers()) list += (list.empty() ? "" : ", ") + p;
      throw AddonError(kErrModelLoad, what + ": execution provider " + provider + " is not available in " +
                                          library->path() + " (ONNX Runtime " + library->version() +
                                          "); available: " + list);
    }
  }
  OrtSessionOptions* raw = nullptr;
  CheckStatus(api.CreateSessionOptions(&raw), kErrModelLoad, what);
  OrtPtr<OrtSessionOptions> options(raw);
  CheckStatus(api.SetIntraOpNumThreads(options.get(), config.intraOpThreads), kErrModelLoad, what);
  if (config.interOpThreads > 0) {
    CheckStatus(api.SetInterOpNumThreads(options.get(), config.interOpThreads), kErrModelLoad, what);
  }
  CheckStatus(api.SetSessionGraphOptimizationLevel(options.get(), config.optimizationLevel), kErrModelLoad, what);
  CheckStatus(api.SetSessionExecutionMode(options.get(), config.executionMode), kErrModelLoad, what);
  // With intra_op_threads > 1 every session gets its own ORT thread pool, beside the addon's run threads; ORT's
  // default lets those threads spin waiting for work, which burns the cores the other runs need. No spinning.
  CheckStatus(api.AddSessionConfigEntry(options.get(), "session.intra_op.allow_spinning", "0"), kErrModelLoad, what);
  CheckStatus(api.AddSessionConfigEntry(options.get(), "session.inter_op.allow_spinning", "0"), kErrModelLoad, what);
  for (const std::string& provider : config.providers) AppendProvider(options.get(), provider, what);
  return options;
}

std::shared_ptr<ModelSession> ModelSession::FromFile(const std::string& path, const SessionConfig& config) {
  const std::string what = "cannot load model " + path;
  OrtPtr<OrtSessionOptions> options = BuildOptions(config, what);
  OrtSession* raw = nullptr;
  CheckStatus(Ort().CreateSession(OrtLibrary::Current()->env(), path.c_str(), options.get(), &raw), kErrModelLoad,
              what);
  return Inspect(OrtPtr<OrtSession>(raw), config, what);
}

std::shared_ptr<ModelSession> ModelSession::FromBytes(const void* data, size_t size, const SessionConfig& config) {
  const std::string what = "cannot load model from " + std::to_string(size) + " bytes";
  OrtPtr<OrtSessionOptions> options = BuildOptions(config, what);
  OrtSession* raw = nullptr;
  CheckStatus(Ort().CreateSessionFromArray(OrtLibrary::Current()->env(), data, size, options.get(), &raw),
              kErrModelLoad, what);
  return Inspect(OrtPtr<OrtSession>(raw), config, what);
}

std::shared_ptr<ModelSession> ModelSession::Inspect(OrtPtr<OrtSession> session, const SessionConfig& config,
                                                    const std::string& what) {
  const OrtApi& api = Ort();
  OrtAllocator* allocator = DefaultAllocator();
  std::shared_ptr<ModelSession> result(new ModelSession());
  result->threads_ = config.intraOpThreads;

  size_t count = 0;
  CheckStatus(api.SessionGetInputCount(session.get(), &count), kErrModelLoad, what);
  for (size_t i = 0; i < count; ++i) {
    AllocatedString name(allocator);
    CheckStatus(api.SessionGetInputName(session.get(), i, allocator, name.out()), kErrModelLoad, what);
    OrtTypeInfo* rawInfo = nullptr;
    CheckStatus(api.SessionGetInputTypeInfo(session.get(), i, &rawInfo), kErrModelLoad, what);
    OrtPtr<OrtTypeInfo> info(rawInfo);
    result->inputs_.push_back(DescribeValue(name.str(), info.get(), what));
  }
  CheckStatus(api.SessionGetOutputCount(session.get(), &count), kErrModelLoad, what);
  for (size_t i = 0; i < count; ++i) {
    AllocatedString name(allocator);
    CheckStatus(api.SessionGetOutputName(session.get(), i, allocator, name.out()), kErrModelLoad, what);
    OrtTypeInfo* rawInfo = nullptr;
    CheckStatus(api.SessionGetOutputTypeInfo(session.get(), i, &rawInfo), kErrModelLoad, what);
    OrtPtr<OrtTypeInfo> info(rawInfo);
    result->outputs_.push_back(DescribeValue(name.str(), info.get(), what));
  }

  OrtModelMetadata* rawMetadata = nullptr;
  CheckStatus(api.SessionGetModelMetadata(session.get(), &rawMetadata), kErrModelLoad, what);
  OrtPtr<OrtModelMetadata> metadata(rawMetadata);
  ModelMetadataInfo& m = result->metadata_;
  auto read = [&](OrtStatus* (*getter)(const OrtModelMetadata*, OrtAllocator*, char**), std::string& out) {
    AllocatedString value(allocator);
    CheckStatus(getter(metadata.get(), allocator, value.out()), kErrModelLoad, what);
    out = value.str();
  };
  read(api.ModelMetadataGetProducerName, m.producerName);
  read(api.ModelMetadataGetGraphName, m.graphName);
  read(api.ModelMetadataGetDomain, m.domain);
  read(api.ModelMetadataGetDescription, m.description);
  read(api.ModelMetadataGetGraphDescription, m.graphDescription);
  CheckStatus(api.ModelMetadataGetVersion(metadata.get(), &m.version), kErrModelLoad, what);

  char** keys = nullptr;
  int64_t keyCount = 0;
  CheckStatus(api.ModelMetadataGetCustomMetadataMapKeys(metadata.get(), allocator, &keys, &keyCount), kErrModelLoad,
              what);
  // Each key, then the array itself, belongs to the allocator; free them all even if a lookup fails.
  std::vector<std::unique_ptr<AllocatedString>> ownedKeys;
  for (int64_t i = 0; i < keyCount; ++i) {
    ownedKeys.push_back(std::make_unique<AllocatedString>(allocator));
    *ownedKeys.back()->out() = keys[i];
  }
  if (keys != nullptr) allocator->Free(allocator, keys);
  for (const auto& key : ownedKeys) {
    AllocatedString value(allocator);
    const std::string keyText = key->str();
    CheckStatus(api.ModelMetadataLookupCustomMetadataMap(metadata.get(), allocator, keyText.c_str(), value.out()),
                kErrModelLoad, what);
    m.custom.emplace_back(keyText, value.str());
  }

  result->session_ = std::move(session);
  return result;
}

int ModelSession::InputIndex(const std::string& name) const {
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

int ModelSession::OutputIndex(const std::string& name) const {
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (outputs_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<OrtPtr<OrtValue>> ModelSession::Run(OrtRunOptions* runOptions,
                                                const std::vector<const char*>& inputNames,
                                                const std::vector<const OrtValue*>& inputs,
                                                const std::vector<const char*>& outputNames) const {
  std::vector<OrtValue*> raw(outputNames.size(), nullptr);
  OrtStatus* status = Ort().Run(session_.get(), runOptions, inputNames.data(), inputs.data(), inputs.size(),
                                outputNames.data(), outputNames.size(), raw.data());
  // Own whatever ORT produced before reporting a failure, so nothing leaks.
  std::vector<OrtPtr<OrtValue>> outputs;
  outputs.reserve(raw.size());
  for (OrtValue* value : raw) outputs.emplace_back(value);
  CheckStatus(status, kErrInference, "inference failed");
  return outputs;
}

}  // namespace forecastd
