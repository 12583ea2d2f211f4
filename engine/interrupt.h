// Stopping a long call between graph passes. An interactive host (the Python package, for Ctrl-C)
// installs a check on the thread that makes a call; Graph::forward polls it, every 20 ms at most,
// and throws Interrupted once it says stop. Every method spends its time in forward passes, and
// at a pass's start the graph is between passes: the model is unchanged and usable after. Work on
// other threads (a parallel() part's) is not polled: parallel() returns once every part has, and
// the calling thread's next pass stops.
#pragma once
#include <cstddef>
#include <functional>
#include <stdexcept>

namespace gb {

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// While alive, poll_interrupt() on this thread asks `stop`, first 20 ms after construction (a
// short call never pays for asking). Once it has said stop, every later poll throws at once, so an
// error handler that catches and goes on cannot lose it. Nests.
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
  bool stopped_ = false;
  long long last_ns_;
};

// Throws Interrupted when this thread's check says stop; a no-op without one.
void poll_interrupt();

// fn(0), ..., fn(n - 1) on `parts` threads, in rounds of `parts` with a poll between rounds: for
// work without forward passes, whose other threads would otherwise finish their whole share after
// the calling thread's check said stop.
void parallel_polled(int parts, size_t n, const std::function<void(size_t)>& fn);

}  // namespace gb
