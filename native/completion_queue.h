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

  // How long (microseconds, 0 = never) the JavaScript thread polls its event loop for I/O before sleeping while
  // no run is in flight (see AwaitRequest). Process-wide; any thread, any time.
  static void SetIoPoll(unsigned microseconds);
  static unsigned IoPoll();

 private:
  // The libuv handle and the cleanup hook's handle: heap-allocated, freed by the handle's close callback (which
  // may come after the queue itself is gone).
  struct Wakeup;

  CompletionQueue() = default;
  static void OnWakeup(uv_async_t* async);
  // JavaScript thread, just before the event loop would sleep waiting for I/O: AwaitRun while runs are in
  // flight, else AwaitRequest. Both poll, and stop as soon as anything is ready for the loop, which then takes it
  // at once instead of the thread going to sleep and being woken for it: a wake-up costs tens of microseconds on
  // a virtual machine whose idle CPUs sleep, more than a short run.
  // It also tells the run pool when this thread is saturated (NoteTurn).
  static void OnPrepare(uv_prepare_t* prepare);
  // How a look for something ready before the loop sleeps ended.
  enum class Poll {
    kSkipped,      // not polled: the loop may sleep
    kLoopBusy,     // not polled: the loop will not sleep anyway (immediates, pending callbacks, a timer due)
    kDoneAtOnce,   // a run had finished already
    kReadyAtOnce,  // I/O was waiting already
    kReady,        // a run finished or I/O came while polling
    kTimedOut,     // nothing came
  };
  // One turn of this thread's loop, seen from OnPrepare: saturated when a run had finished already, or I/O was
  // waiting at the poll's first look (AwaitRun, or AwaitRequest with IoPoll() > 0), and the turn's work took
  // kSaturatedTurnNanos or more. kSaturatedTurnsInARow of them tell the run pool
  // (RunPool::NoteCallerSaturated) that this thread's next job comes when it gets to it: a run thread spinning
  // for it would only take a CPU others want (the clients of a server under load). A turn that waited breaks the
  // row, and so does one that follows an OnPrepare after which the loop may have slept (its time is unknown);
  // an OnPrepare that did not poll (kSkipped, kLoopBusy) leaves the row as it is. Short turns do not count: a
  // caller awaiting runs one after the other is quick to queue the next, and the spin catches it.
  void NoteTurn(bool saturated);
  // Polls for a finished run:
  // - recent runs shorter than kShortRunNanos: for at most that long;
  // - longer ones, up to kLongestAwaitNanos: for twice their recent time, capped there, and only while a CPU is
  //   free for this thread beside the pool's work (RunPool::BusyThreads, every environment's, below the CPUs),
  //   so that the poll never takes a core from a run. A lone request (one connection) then gets its answer
  //   without a wake-up.
  Poll AwaitRun(uv_loop_t* loop);
  // With IoPoll() > 0: polls for the loop's next I/O (a server's next request) for at most that long. Adaptive:
  // after kIdleMissesBeforePause polls in a row found nothing, only one in kIdleProbeEvery of the loop's wake-ups
  // polls, until one catches something; a loop that wakes rarely so polls rarely.
  Poll AwaitRequest(uv_loop_t* loop);
  // The poll both use: until `done` (checked every turn) or anything is ready on the loop's backend (checked every
  // 64 turns, and first), or `nanos` passed, and never into the millisecond in which the loop's next timer is due
  // (libuv counts whole milliseconds). Afterwards the loop's clock is brought up to date, so the time spent here
  // is taken off the loop's wait for that timer instead of being added to it.
  template <typename Done>
  Poll PollUntil(uv_loop_t* loop, int64_t nanos, Done done);
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
  unsigned idleMisses_ = 0;                 // JavaScript thread only: AwaitRequest polls in a row that found nothing
  // JavaScript thread only: NoteTurn(true) in a row, counted up to kSaturatedTurnsInARow.
  unsigned saturatedTurns_ = 0;
  // JavaScript thread only: the last OnPrepare ended with something ready or done, so the loop did not sleep.
  bool loopAwake_ = false;
  uint64_t prepareEnd_ = 0;                 // JavaScript thread only: uv_hrtime() at the end of the last OnPrepare
  int64_t recentRunNanos_ = kShortRunNanos + 1;  // JavaScript thread only: moving average of Execute() times
  std::atomic<bool> anyDone_{false};        // a finished job was queued and the loop signalled for it
  // Runs shorter than this are waited for before the loop sleeps (see AwaitRun).
  static constexpr int64_t kShortRunNanos = 50000;
  // Longer runs are waited for up to this long, while a CPU is free (see AwaitRun): past it, a wake-up costs a few
  // percent of the run or less.
  static constexpr int64_t kLongestAwaitNanos = 1000000;
  static constexpr unsigned kIdleMissesBeforePause = 8;
  static constexpr unsigned kIdleProbeEvery = 16;
  static constexpr int64_t kSaturatedTurnNanos = 50000;
  static constexpr unsigned kSaturatedTurnsInARow = 4;
};

}  // namespace forecastd
