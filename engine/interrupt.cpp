#include "engine/interrupt.h"

#include <chrono>

namespace gb {

static thread_local InterruptCheck* t_check = nullptr;

InterruptCheck::InterruptCheck(std::function<bool()> stop) : stop_(std::move(stop)), outer_(t_check) { t_check = this; }

InterruptCheck::~InterruptCheck() { t_check = outer_; }

void poll_interrupt() {
  InterruptCheck* c = t_check;
  if (!c) return;
  if (!c->stopped_.load(std::memory_order_relaxed) && std::this_thread::get_id() == c->owner_) {
    // Asking may wait for a lock (Python's GIL) and passes can take microseconds: every 20 ms.
    const long long now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
    if (now - c->last_ns_ < 20'000'000) return;
    c->last_ns_ = now;
    if (c->stop_()) c->stopped_.store(true, std::memory_order_relaxed);
  }
  if (c->stopped_.load(std::memory_order_relaxed)) throw Interrupted();
}

InterruptCheck* interrupt_check() { return t_check; }

LentInterruptCheck::LentInterruptCheck(InterruptCheck* c) : saved_(t_check) { t_check = c; }

LentInterruptCheck::~LentInterruptCheck() { t_check = saved_; }

}  // namespace gb
