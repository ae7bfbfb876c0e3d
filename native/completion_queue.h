#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <napi.h>
#include <uv.h>

#include "job.h"

namespace forecastd {

// Per-environment (main thread or worker thread) bridge from the run pool back to JavaScript.
//
// Finished jobs are collected here, and one libuv async handle of the environment's event loop drains them all on
// the JavaScript thread: a burst of completions costs one wake-up, and the jobs that finish while a drain runs
// (the callers' next runs, queued from the drain's own promise reactions) are drained on the loop's next turn, so
// timers and I/O always get their turn in between. (A thread-safe function would keep calling back, up to a
// thousand times in one turn, as long as fast runs keep finishing: an event loop stalled for many milliseconds.)
// The handle keeps the loop alive only while jobs are in flight: an idle addon never keeps the process alive.
class CompletionQueue : public std::enable_shared_from_this<CompletionQueue> {
 public:
  // JavaScript thread. Registers an asynchronous environment cleanup hook that shuts the queue down and closes
  // the handle before the environment's loop goes away.
  static std::shared_ptr<CompletionQueue> Create(Napi::Env env);

  // JavaScript thread: hands `job` to the run pool.
  void Dispatch(Napi::Env env, std::unique_ptr<Job> job);

  // Run-pool thread: `job` has executed (or was skipped); queue it for completion.
  void Finish(std::unique_ptr<Job> job);

  // True once the environment started shutting down.
  bool closed();

 private:
  // The libuv handle and the cleanup hook's handle: heap-allocated, freed by the handle's close callback (which
  // may come after the queue itself is gone).
  struct Wakeup;

  CompletionQueue() = default;
  static void OnWakeup(uv_async_t* async);
  static void OnPrepare(uv_prepare_t* prepare);
  // JavaScript thread, just before the event loop would sleep waiting for I/O: when runs are in flight and recent
  // runs were short (under kShortRunNanos), polls for a finished one for at most that long, and stops as soon as
  // anything else is ready for the loop. A run that finishes meanwhile is then taken by the loop's poll at once,
  // instead of the thread going to sleep and being woken for it (a wake-up costs more than such a run on a
  // virtual machine whose idle CPUs sleep).
  void AwaitShortRun(uv_loop_t* loop);
  static void OnCleanup(napi_async_cleanup_hook_handle hook, void* data);
  void Drain();
  // Environment cleanup (JavaScript thread): waits for this environment's jobs still on the pool, then drops them
  // without settling their promises; nothing calls into JavaScript afterwards. Then closes the handle.
  void Shutdown();

  napi_env env_ = nullptr;
  Wakeup* wakeup_ = nullptr;                       // JavaScript thread; null once closed
  std::unique_ptr<Napi::AsyncContext> context_;    // JavaScript thread: the async context completions run in
  std::mutex mutex_;
  std::condition_variable idle_;
  std::vector<std::unique_ptr<Job>> done_;  // guarded by mutex_
  size_t onPool_ = 0;                       // jobs submitted and not yet finished; guarded by mutex_
  bool closed_ = false;                     // guarded by mutex_
  size_t inFlight_ = 0;                     // JavaScript thread only: dispatched and not yet completed
  int64_t recentRunNanos_ = kShortRunNanos + 1;  // JavaScript thread only: moving average of Execute() times
  std::atomic<bool> anyDone_{false};        // a finished job was queued and the loop signalled for it
  // Runs shorter than this are waited for before the loop sleeps (see AwaitShortRun).
  static constexpr int64_t kShortRunNanos = 50000;
};

}  // namespace forecastd
