#pragma once

#include <memory>

#include <napi.h>

#include "model_session.h"

namespace forecastd {

// The JavaScript Session object: inspection data as plain properties, run() and dispose(). Instances are
// created only by loadSession(); the wrapped ModelSession is shared with the runs in flight.
class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  explicit SessionWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelSession> session_;
};

}  // namespace forecastd
