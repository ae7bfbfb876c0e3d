#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include <napi.h>

#include "job.h"

namespace forecastd {

// Per-environment (main thread or worker thread) bridge from the run pool back to JavaScript.
//
// Finished jobs are collected here and one thread-safe function call drains them all on the JavaScript
// thread, so a burst of completions costs one wake-up. The thread-safe function is referenced only while jobs
// are in flight: an idle addon never keeps the process alive.
class CompletionQueue : public std::enable_shared_from_this<CompletionQueue> {
 public:
  static std::shared_ptr<CompletionQueue> Create(Napi::Env env);

  // JavaScript thread: hands `job` to the run pool.
  void Dispatch(Napi::Env env, std::unique_ptr<Job> job);

  // Run-pool thread: `job` has executed (or was skipped); queue it for completion.
  void Finish(std::unique_ptr<Job> job);

  // True once the environment started shutting down.
  bool closed();

  // Environment cleanup hook (JavaScript thread): waits for this environment's jobs still on the pool, then
  // drops them without settling their promises; nothing calls into JavaScript afterwards.
  void Shutdown();

 private:
  static void CallJs(Napi::Env env, Napi::Function callback, CompletionQueue* queue, void* data);
  using Signal = Napi::TypedThreadSafeFunction<CompletionQueue, void, &CompletionQueue::CallJs>;

  CompletionQueue() = default;
  void Drain(Napi::Env env);

  Signal signal_;
  std::mutex mutex_;
  std::condition_variable idle_;
  std::vector<std::unique_ptr<Job>> done_;  // guarded by mutex_
  size_t onPool_ = 0;                       // jobs submitted and not yet finished; guarded by mutex_
  bool closed_ = false;                     // guarded by mutex_
  size_t inFlight_ = 0;                     // JavaScript thread only: dispatched and not yet completed
};

}  // namespace forecastd
