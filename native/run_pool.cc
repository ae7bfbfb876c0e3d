#include "run_pool.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <system_error>
#include <thread>

#include <pthread.h>
#include <sched.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "addon_error.h"
#include "completion_queue.h"
#include "cpu_relax.h"
#include "job.h"

namespace forecastd {

namespace {
std::atomic<RunPool*> g_pool{nullptr};
std::mutex g_startMutex;
// Microseconds a run thread polls for the next job before sleeping. At one connection the gap between a result
// and the client's next request (over loopback, on a quiet 2-vCPU VM whose idle CPUs are slow to wake) is
// 100-300 µs: bench/http's heavy model at one connection gave about 4,300 req/s with 100 µs, 4,600 with 300 µs
// and the same with 600 or 1,000 µs, 3,400 with 30 µs and 3,000 with none.
std::atomic<unsigned> g_spinMicros{300};
std::atomic<unsigned> g_cpus{1};
// Spins in a row that find nothing before spinning pauses (see SetSpin).
constexpr unsigned kMissesBeforePause = 8;
constexpr unsigned kProbeEvery = 16;
// steady_clock nanoseconds until which a JavaScript thread counts as saturated (see NoteCallerSaturated).
std::atomic<int64_t> g_saturatedUntil{0};

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void RunPool::NoteCallerSaturated() {
  g_saturatedUntil.store(NowNanos() + kSaturatedNanos, std::memory_order_relaxed);
}

void RunPool::SetSpin(unsigned microseconds) { g_spinMicros.store(microseconds, std::memory_order_relaxed); }

unsigned RunPool::Spin() { return g_spinMicros.load(std::memory_order_relaxed); }

unsigned RunPool::Cpus() { return g_cpus.load(std::memory_order_relaxed); }

size_t RunPool::BusyThreads() {
  RunPool* pool = g_pool.load();
  if (pool == nullptr) return 0;
  return pool->executing_.load(std::memory_order_relaxed) + pool->queued_.load(std::memory_order_relaxed);
}

void RunPool::Start(unsigned threads, unsigned cpus) {
  std::lock_guard<std::mutex> startLock(g_startMutex);
  if (g_pool.load() != nullptr) return;
  g_cpus.store(cpus == 0 ? 1 : cpus, std::memory_order_relaxed);
  // Never deleted, not even when starting fails: threads that did start may still be inside it.
  RunPool* pool = new RunPool();
  unsigned started = 0;
  try {
    for (; started < threads; ++started) std::thread([pool] { pool->Loop(); }).detach();
  } catch (const std::system_error& e) {
    {
      std::lock_guard<std::mutex> lock(pool->mutex_);
      pool->stopping_ = true;
    }
    pool->wake_.notify_all();
    throw AddonError(kErrRuntimeLoad, "cannot start run thread " + std::to_string(started + 1) + " of " +
                                          std::to_string(threads) + ": " + e.what() +
                                          " (a limit on threads or processes, such as ulimit -u or a container's "
                                          "pids limit?); ask for fewer runThreads or raise the limit");
  }
  g_pool.store(pool);
}

void RunPool::Submit(std::shared_ptr<CompletionQueue> queue, std::unique_ptr<Job> job) {
  RunPool* pool = g_pool.load();
  bool wake;
  {
    std::lock_guard<std::mutex> lock(pool->mutex_);
    pool->tasks_.push_back(Task{std::move(queue), std::move(job)});
    const size_t queued = pool->tasks_.size();
    pool->queued_.store(queued);
    // A spinning thread takes the first queued job; a sleeper is woken for each one beyond it. Read under the
    // lock, after the push: a spinner that stops spinning afterwards checks tasks_ under this same lock before
    // it sleeps (it clears spinning_ first), so a job queued while it looked busy is never left behind.
    wake = !pool->spinning_.load() || queued > 1;
  }
  if (wake) pool->wake_.notify_one();
}

void RunPool::TakeLocked(Task& task) {
  task = std::move(tasks_.front());
  tasks_.pop_front();
  queued_.store(tasks_.size());
  executing_.fetch_add(task.job->Threads(), std::memory_order_relaxed);
  running_.push_back(Running{task.queue.get(), task.job.get()});
}

bool RunPool::SpinForTask(Task& task) {
  const unsigned micros = g_spinMicros.load(std::memory_order_relaxed);
  if (micros == 0) return false;
  if (NowNanos() < g_saturatedUntil.load(std::memory_order_relaxed)) return false;
  // Spinning pays off only while jobs come within the budget. After kMissesBeforePause empty spins in a row,
  // only one chance to spin in kProbeEvery is taken (to notice when jobs come quickly again); a spin that
  // catches a job resumes spinning every time.
  const unsigned misses = misses_.load(std::memory_order_relaxed);
  if (misses >= kMissesBeforePause) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    if ((misses - kMissesBeforePause) % kProbeEvery != 0) return false;
  }
  bool expected = false;
  if (!spinning_.compare_exchange_strong(expected, true)) return false;  // another thread spins already
  const int64_t deadline = NowNanos() + int64_t{micros} * 1000;
  bool taken = false;
  bool saturated = false;
  unsigned turns = 0;
  for (;;) {
    if (queued_.load(std::memory_order_relaxed) != 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
      if (!tasks_.empty()) {
        TakeLocked(task);
        taken = true;
        break;
      }
    }
    CpuRelax();
    // Every 16 turns: let any other thread that wants this CPU have it first (the JavaScript thread, a client on
    // the same machine), so spinning only ever uses a CPU nobody else asked for; then look at the clock, and stop
    // when a JavaScript thread became saturated (NoteCallerSaturated).
    if ((++turns & 15U) == 0) {
      sched_yield();
      const int64_t now = NowNanos();
      if (now >= deadline) break;
      if (now < g_saturatedUntil.load(std::memory_order_relaxed)) {
        saturated = true;
        break;
      }
    }
  }
  spinning_.store(false);
  if (taken) {
    misses_.store(0, std::memory_order_relaxed);
  } else if (!saturated) {  // cut short, not a spin that found nothing
    misses_.fetch_add(1, std::memory_order_relaxed);
  }
  return taken;
}

std::vector<std::unique_ptr<Job>> RunPool::Cancel(const CompletionQueue* queue) {
  std::vector<std::unique_ptr<Job>> removed;
  RunPool* pool = g_pool.load();
  if (pool == nullptr) return removed;
  std::lock_guard<std::mutex> lock(pool->mutex_);
  auto keep = std::stable_partition(pool->tasks_.begin(), pool->tasks_.end(),
                                    [queue](const Task& task) { return task.queue.get() != queue; });
  for (auto it = keep; it != pool->tasks_.end(); ++it) removed.push_back(std::move(it->job));
  pool->tasks_.erase(keep, pool->tasks_.end());
  pool->queued_.store(pool->tasks_.size());
  for (const Running& running : pool->running_) {
    if (running.queue == queue) running.job->Terminate();
  }
  return removed;
}

bool RunPool::StopForExit(std::chrono::milliseconds bound) {
  RunPool* pool = g_pool.load();
  if (pool == nullptr) return true;
  std::unique_lock<std::mutex> lock(pool->mutex_);
  pool->stopping_ = true;
  pool->exiting_ = true;
  for (const Running& running : pool->running_) running.job->Terminate();
  pool->wake_.notify_all();
  // system_clock, not wait_for's steady clock: libstdc++ waits on the steady clock with pthread_cond_clockwait,
  // which needs glibc 2.30, and the prebuild must load on glibc 2.28.
  return pool->idle_.wait_until(lock, std::chrono::system_clock::now() + bound,
                                [pool] { return pool->running_.empty() && pool->finishing_ == 0; });
}

void RunPool::Loop() {
#if defined(__linux__)
  // SCHED_BATCH: a run thread woken by a new job does not preempt the JavaScript thread that queued it (on a
  // busy machine the kernel would otherwise switch to the run thread at once and leave the caller stalled for
  // the whole inference). Needs no privileges; on failure the thread simply keeps the default policy.
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
  // Named for top -H, perf and /proc/PID/task/*/comm (at most 15 characters). prctl, not pthread_setname_np,
  // which is versioned GLIBC_2.34 (the prebuild must load on glibc 2.28).
  prctl(PR_SET_NAME, "forecastd-run", 0, 0, 0);
#endif
  for (;;) {
    Task task;
    if (!SpinForTask(task)) {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!stopping_ && tasks_.empty()) {
        wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      }
      if (stopping_) return;
      TakeLocked(task);
    }
    Job* const job = task.job.get();
    // A worker thread that is shutting down no longer needs its results: skip the work, still hand the job
    // back so its JavaScript references are released on the right thread.
    if (!task.queue->closed()) {
      const auto started = std::chrono::steady_clock::now();
      job->Execute();
      job->executeNanos = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count();
    }
    bool exiting;
    {
      // Off the running list before the job can complete (and be destroyed) on its JavaScript thread, so
      // Cancel() and StopForExit() never call Terminate() on a finished job; `finishing_` still counts it.
      std::lock_guard<std::mutex> lock(mutex_);
      running_.erase(std::find_if(running_.begin(), running_.end(), [job](const Running& r) { return r.job == job; }));
      executing_.fetch_sub(job->Threads(), std::memory_order_relaxed);
      exiting = exiting_;
      if (!exiting) ++finishing_;
    }
    if (exiting) {
      // The process is exiting: nothing completes any more, and destroying the job here would touch JavaScript
      // references from this thread. Both are left to the end of the process.
      static_cast<void>(task.job.release());
      static_cast<void>(new std::shared_ptr<CompletionQueue>(std::move(task.queue)));
      std::lock_guard<std::mutex> lock(mutex_);
      idle_.notify_all();
      return;
    }
    task.queue->Finish(std::move(task.job));
    task.queue.reset();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --finishing_;
      idle_.notify_all();
    }
  }
}

}  // namespace forecastd
