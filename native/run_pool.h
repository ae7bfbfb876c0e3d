#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace forecastd {

class CompletionQueue;
class Job;

// The addon's own threads that execute model loads and runs.
//
// Why not ORT's RunAsync: it refuses sessions with fewer than 2 intra-op threads, and serving wants one
// thread per run with many runs side by side. Why not Napi::AsyncWorker: it runs on libuv's shared threadpool
// (4 threads by default) that fs, dns and zlib also need, so slow models would stall file reads and lookups,
// and the pool could not be sized to the CPU. Finished jobs go back through each environment's
// CompletionQueue (one thread-safe function per environment), which resolves the promises.
//
// One pool per process, shared by every worker thread. Its threads are detached and the pool object is never
// destroyed (a thread may still be inside it at exit). At process exit, StopForExit() stops it before ONNX
// Runtime's static destructors run.
class RunPool {
 public:
  // Starts `threads` threads; called once, when the ONNX Runtime library is configured. When a thread cannot be
  // started (a thread limit), the threads already started are stopped and AddonError(ERR_RUNTIME_LOAD) is thrown;
  // a later call may try again.
  static void Start(unsigned threads);

  // Queues `job`; when it has run, it is handed to `queue` (or skipped when that environment shut down).
  static void Submit(std::shared_ptr<CompletionQueue> queue, std::unique_ptr<Job> job);

  // `queue`'s environment is going away: removes its queued jobs (returned, not executed) and asks its running
  // ones to terminate. Returns the removed jobs so the caller can release them on its own thread.
  static std::vector<std::unique_ptr<Job>> Cancel(const CompletionQueue* queue);

  // Process exit: no job starts any more, running ones are asked to terminate, and the caller waits up to `bound`
  // for them. True when none is left running.
  static bool StopForExit(std::chrono::milliseconds bound);

 private:
  struct Task {
    std::shared_ptr<CompletionQueue> queue;
    std::unique_ptr<Job> job;
  };
  struct Running {
    const CompletionQueue* queue;
    Job* job;
  };

  RunPool() = default;
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Task> tasks_;           // guarded by mutex_
  std::vector<Running> running_;     // guarded by mutex_: executing now
  size_t finishing_ = 0;             // guarded by mutex_: executed, being handed to their queue
  bool stopping_ = false;            // guarded by mutex_: threads leave their loop
  bool exiting_ = false;             // guarded by mutex_: the process is exiting; nothing completes any more
};

}  // namespace forecastd
