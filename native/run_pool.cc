#include "run_pool.h"

#include <atomic>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#include "completion_queue.h"
#include "job.h"

namespace forecastd {

namespace {
std::atomic<RunPool*> g_pool{nullptr};
}  // namespace

RunPool::RunPool(unsigned threads) {
  for (unsigned i = 0; i < threads; ++i) std::thread([this] { Loop(); }).detach();
}

void RunPool::Start(unsigned threads) {
  if (g_pool.load() != nullptr) return;
  // Owned by the process, never destroyed (see the class comment).
  g_pool.store(std::unique_ptr<RunPool>(new RunPool(threads)).release());
}

void RunPool::Submit(std::shared_ptr<CompletionQueue> queue, std::unique_ptr<Job> job) {
  RunPool* pool = g_pool.load();
  {
    std::lock_guard<std::mutex> lock(pool->mutex_);
    pool->tasks_.push_back(Task{std::move(queue), std::move(job)});
  }
  pool->wake_.notify_one();
}

void RunPool::Loop() {
#if defined(__linux__)
  // SCHED_BATCH: a run thread woken by a new job does not preempt the JavaScript thread that queued it (on a
  // busy machine the kernel would otherwise switch to the run thread at once and leave the caller stalled for
  // the whole inference). Needs no privileges; on failure the thread simply keeps the default policy.
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
#endif
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return !tasks_.empty(); });
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    // A worker thread that is shutting down no longer needs its results: skip the work, still hand the job
    // back so its JavaScript references are released on the right thread.
    if (!task.queue->closed()) task.job->Execute();
    task.queue->Finish(std::move(task.job));
  }
}

}  // namespace forecastd
