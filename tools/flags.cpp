// Checks for command-line values, with messages that say what was given and what is accepted.
#include <cmath>
#include <sstream>

#include "tools/commands.h"

namespace gb {

template <class T, class Parse>
static bool parse_whole(const std::string& text, T& v, Parse parse) {
  size_t used = 0;
  try {
    v = parse(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == text.size();
}

bool parse_number(const std::string& text, double& v) {
  return parse_whole(text, v, [](const std::string& t, size_t* u) { return std::stod(t, u); });
}

bool parse_number(const std::string& text, long& v) {
  return parse_whole(text, v, [](const std::string& t, size_t* u) { return std::stol(t, u); });
}

CLI::Validator finite(double lo, double hi, bool lo_open, bool hi_open) {
  std::ostringstream d;
  d << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
  const std::string range = d.str();
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        const bool inside = parse_number(text, v) && std::isfinite(v) && (lo_open ? v > lo : v >= lo) &&
                            (hi_open ? v < hi : v <= hi);
        return inside ? std::string() : "'" + text + "' is not a finite number in " + range;
      },
      "FLOAT in " + range);
}

CLI::Validator at_least(long n) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        long v = 0;
        return parse_number(text, v) && v >= n ? std::string()
                                               : "'" + text + "' is not a whole number >= " + std::to_string(n);
      },
      "INT >= " + std::to_string(n));
}

CLI::Validator int_in(long lo, long hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        long v = 0;
        return parse_number(text, v) && v >= lo && v <= hi ? std::string()
                                                           : "'" + text + "' is not a whole number in " + range;
      },
      "INT in " + range);
}

}  // namespace gb
