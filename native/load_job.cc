#include "load_job.h"

#include "addon_state.h"

namespace forecastd {

LoadJob::LoadJob(Napi::Env env, std::string path, SessionConfig config)
    : deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), config_(std::move(config)) {}

LoadJob::LoadJob(Napi::Env env, Napi::TypedArray bytes, SessionConfig config)
    : deferred_(Napi::Promise::Deferred::New(env)), config_(std::move(config)) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  NAPI_THROW_IF_FAILED_VOID(env, napi_get_typedarray_info(env, bytes, &type, &length, &data, nullptr, nullptr));
  bytes_ = HostBuffer::Owning(data, length);
  if (bytes_ == nullptr) {
    bytes_ = HostBuffer::CopyOf(data, length);
    data = bytes_->data();
  }
  data_ = data;
  byteLength_ = length;
}

void LoadJob::Execute() {
  try {
    session_ = bytes_ == nullptr ? ModelSession::FromFile(path_, config_)
                                 : ModelSession::FromBytes(data_, byteLength_, config_);
  } catch (const AddonError& e) {
    error_ = e;
  } catch (const std::exception& e) {
    error_ = FromStdException(e, kErrModelLoad, "cannot load model");
  }
}

void LoadJob::Complete(Napi::Env env) {
  bytes_.reset();
  try {
    if (error_) {
      deferred_.Reject(MakeJsError(env, *error_));
      return;
    }
    auto holder = Napi::External<std::shared_ptr<ModelSession>>::New(env, &session_);
    deferred_.Resolve(StateOf(env).sessionClass.New({holder}));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred_.Reject(MakeJsError(env, FromStdException(e, kErrModelLoad, "cannot load model")));
  }
}

}  // namespace forecastd
