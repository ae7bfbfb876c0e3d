#pragma once

#include <cstdint>

#include <napi.h>

namespace forecastd {

// A unit of slow native work: Execute() runs on a run-pool thread and touches only plain C++ data (no
// Node-API); Complete() runs afterwards on the JavaScript thread of the environment that dispatched it and
// settles its promise. Execute() must not throw: it records failures for Complete() to report.
class Job {
 public:
  virtual ~Job() = default;
  virtual void Execute() = 0;
  virtual void Complete(Napi::Env env) = 0;
  // Any thread, while Execute() may be running: asks it to stop as soon as it can (a run stops between graph
  // nodes; a load cannot be interrupted and simply finishes).
  virtual void Terminate() {}
  // CPUs Execute() keeps busy while it runs (a run's intra-op threads).
  virtual unsigned Threads() const { return 1; }

  // Nanoseconds Execute() took, set by the run pool (0 when it was skipped).
  int64_t executeNanos = 0;
};

}  // namespace forecastd
