// Checks for command-line values, with messages that say what was given and what is accepted.
#include <cmath>
#include <sstream>

#include "tools/commands.h"

namespace gb {

CLI::Validator finite(double lo, double hi, bool lo_open, bool hi_open) {
  std::ostringstream d;
  d << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
  const std::string range = d.str();
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        const bool inside = used == text.size() && std::isfinite(v) && (lo_open ? v > lo : v >= lo) &&
                            (hi_open ? v < hi : v <= hi);
        return inside ? std::string() : "'" + text + "' is not a finite number in " + range;
      },
      "FLOAT in " + range);
}

CLI::Validator at_least(long n) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        long v = 0;
        size_t used = 0;
        try {
          v = std::stol(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        return used == text.size() && v >= n ? std::string()
                                             : "'" + text + "' is not a whole number >= " + std::to_string(n);
      },
      "INT >= " + std::to_string(n));
}

}  // namespace gb
