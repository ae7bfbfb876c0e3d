#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

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
// One pool per process, shared by every worker thread. Its threads are detached and the pool is never
// destroyed: joining them from static destructors at exit could wait on a run, or touch ORT after unload.
class RunPool {
 public:
  // Starts `threads` threads; called once, when the ONNX Runtime library is configured.
  static void Start(unsigned threads);

  // Queues `job`; when it has run, it is handed to `queue` (or skipped when that environment shut down).
  static void Submit(std::shared_ptr<CompletionQueue> queue, std::unique_ptr<Job> job);

 private:
  struct Task {
    std::shared_ptr<CompletionQueue> queue;
    std::unique_ptr<Job> job;
  };

  explicit RunPool(unsigned threads);
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
};

}  // namespace forecastd
