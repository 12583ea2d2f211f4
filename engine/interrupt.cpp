#include "engine/interrupt.h"

#include <algorithm>
#include <chrono>

#include "engine/threads.h"

namespace gb {

static thread_local InterruptCheck* t_check = nullptr;

static long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

InterruptCheck::InterruptCheck(std::function<bool()> stop)
    : stop_(std::move(stop)), outer_(t_check), last_ns_(now_ns()) {
  t_check = this;
}

InterruptCheck::~InterruptCheck() { t_check = outer_; }

void poll_interrupt() {
  InterruptCheck* c = t_check;
  if (!c) return;
  if (!c->stopped_) {
    // Asking may wait for a lock (Python's GIL) and passes can take microseconds: every 20 ms.
    const long long now = now_ns();
    if (now - c->last_ns_ < 20'000'000) return;
    c->last_ns_ = now;
    c->stopped_ = c->stop_();
  }
  if (c->stopped_) throw Interrupted();
}

void parallel_polled(int parts, size_t n, const std::function<void(size_t)>& fn) {
  const size_t T = size_t(std::max(1, parts));
  for (size_t i0 = 0; i0 < n; i0 += T) {
    poll_interrupt();
    parallel(int(T), [&](int t) {
      if (i0 + size_t(t) < n) fn(i0 + size_t(t));
    });
  }
}

}  // namespace gb
