// Checks that a computation stops when asked (engine/interrupt.h), shared by the tests of the
// phases that run no forward passes (fits, counts), which poll for themselves.
#pragma once
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "engine/interrupt.h"

// Runs fn under a check that says stop when first asked, 25 ms in (the check asks from 20 ms on):
// fn must throw Interrupted after asking exactly once.
template <class Fn>
void check_stops_when_asked(Fn fn) {
  int asked = 0;
  gb::InterruptCheck check([&] { return ++asked > 0; });
  std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK_THROWS_AS(fn(), gb::Interrupted);
  CHECK(asked == 1);
}
