#pragma once

#include <atomic>
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
// CompletionQueue (one libuv async handle per environment), which resolves the promises.
//
// One pool per process, shared by every worker thread. Its threads are detached and the pool object is never
// destroyed (a thread may still be inside it at exit). At process exit, StopForExit() stops it before ONNX
// Runtime's static destructors run.
class RunPool {
 public:
  // Starts `threads` threads; called once, when the ONNX Runtime library is configured. When a thread cannot be
  // started (a thread limit), the threads already started are stopped and AddonError(ERR_RUNTIME_LOAD) is thrown;
  // a later call may try again.
  // `cpus`: the CPUs the process may use (affinity mask and cgroup quota), which may differ from `threads`.
  static void Start(unsigned threads, unsigned cpus);

  // The `cpus` given to Start(); 1 before it.
  static unsigned Cpus();

  // CPUs the pool's work wants now, from every environment of the process: the threads (Job::Threads) of the
  // jobs executing plus one per job queued. Any thread.
  static size_t BusyThreads();

  // Queues `job`; when it has run, it is handed to `queue` (or skipped when that environment shut down).
  // Wakes a sleeping run thread only when no thread is spinning for work (see SetSpin).
  static void Submit(std::shared_ptr<CompletionQueue> queue, std::unique_ptr<Job> job);

  // How long (microseconds, 0 = never) a run thread that has finished a job keeps polling for the next one before
  // it sleeps. At most one thread spins at a time. A job submitted while one spins is picked up without a
  // futex wake-up, which on a virtual machine costs the submitting (JavaScript) thread tens of microseconds.
  // Adaptive: after several spins in a row found nothing, spinning pauses until a job arrives while every run
  // thread sleeps after a short gap, so an idle or sparsely used pool burns no CPU. No thread spins while a
  // JavaScript thread is saturated (NoteCallerSaturated). Any thread, any time.
  static void SetSpin(unsigned microseconds);
  static unsigned Spin();

  // A JavaScript thread with a completion queue (any environment of the process) is saturated: several long
  // turns of its event loop in a row ended with a run already finished or I/O already waiting
  // (CompletionQueue::NoteTurn). Its next job comes when it gets to it, not within a spin, and the CPU a spin
  // would burn is wanted by others (on a server under load, its clients): for the next kSaturatedNanos run
  // threads do not spin, and a spin under way stops, however many CPUs are idle. The cost is one futex wake-up
  // per job queued, on the JavaScript thread, in place of the spin. Any thread.
  static void NoteCallerSaturated();
  static constexpr int64_t kSaturatedNanos = 1000000;

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
  // Polls for a job for up to the spin budget; true with `task` taken when one came.
  bool SpinForTask(Task& task);
  // mutex_ held: moves the first queued task into `task` and marks it running.
  void TakeLocked(Task& task);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Task> tasks_;           // guarded by mutex_
  std::vector<Running> running_;     // guarded by mutex_: executing now
  size_t finishing_ = 0;             // guarded by mutex_: executed, being handed to their queue
  bool stopping_ = false;            // guarded by mutex_: threads leave their loop
  bool exiting_ = false;             // guarded by mutex_: the process is exiting; nothing completes any more
  std::atomic<size_t> queued_{0};    // tasks_.size(), written under mutex_, polled by the spinning thread
  std::atomic<size_t> executing_{0};  // Job::Threads() of the jobs executing now (taken, not yet done); under mutex_
  std::atomic<bool> spinning_{false};  // a thread is polling for work (at most one)
  std::atomic<unsigned> misses_{0};  // spins in a row that found no work
};

}  // namespace forecastd
