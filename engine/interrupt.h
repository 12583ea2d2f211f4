// Stopping a long call between graph passes. An interactive host (the Python package, for Ctrl-C)
// installs a check on the thread that makes a call; Graph::forward polls it, at most every 20 ms,
// and throws Interrupted once it says stop. Every method spends its time in forward passes, and
// at a pass's start the graph is between passes: the model is unchanged and usable after. The
// thread pool lends the check to the workers that run the call's parallel parts, so forward passes
// of graph copies there stop too (parallel() waits for every part and rethrows).
#pragma once
#include <atomic>
#include <functional>
#include <stdexcept>
#include <thread>

namespace gb {

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// While alive, poll_interrupt() on this thread asks `stop` (only this thread asks it). Once it has
// said stop, every later poll under this check throws at once, on any thread it is lent to, so a
// handler that catches and goes on cannot lose it. Nests.
class InterruptCheck {
 public:
  explicit InterruptCheck(std::function<bool()> stop);
  ~InterruptCheck();
  InterruptCheck(const InterruptCheck&) = delete;
  InterruptCheck& operator=(const InterruptCheck&) = delete;

 private:
  friend void poll_interrupt();
  std::function<bool()> stop_;
  InterruptCheck* outer_;
  std::thread::id owner_ = std::this_thread::get_id();
  std::atomic<bool> stopped_{false};
  long long last_ns_ = 0;
};

// Throws Interrupted when this thread's check says stop; a no-op without one.
void poll_interrupt();

// The check this thread polls (null: none), and a scope that lends one to a worker thread.
InterruptCheck* interrupt_check();
class LentInterruptCheck {
 public:
  explicit LentInterruptCheck(InterruptCheck* c);
  ~LentInterruptCheck();
  LentInterruptCheck(const LentInterruptCheck&) = delete;
  LentInterruptCheck& operator=(const LentInterruptCheck&) = delete;

 private:
  InterruptCheck* saved_;
};

}  // namespace gb
