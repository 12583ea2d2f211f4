// The command line as the subcommands declare it: commands, their flags and checks of the flags'
// values. CLI11 parses it, but only tools/flags.cpp, glassbox.cpp and inputs.cpp include CLI11:
// its header compiled to about five seconds of work in every source that included it (19 of them,
// in each of the test command's two builds). The calls read as CLI11's do
// (`c->add_option(...)->capture_default_str()->check(...)`) and behave the same.
#pragma once
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace gb {

// A check of one flag's value: `test` returns "" when the text is accepted, else the message.
struct Check {
  std::function<std::string(std::string&)> test;
  std::string description;  // shown in --help, e.g. "FLOAT in [0, 1)"
};

// Checks whose messages name the value and the range: a finite number in [lo, hi] (an end
// excluded when open; CLI11's own range checks let "nan" through), an integer >= n, a whole
// number in [lo, hi] (for values that drive time or memory), and CLI11's own Range(lo, hi).
Check finite(double lo, double hi, bool lo_open, bool hi_open);
Check at_least(long n);
Check int_in(long lo, long hi);
Check in_range(long lo, long hi);

// True when the whole of `text` is one number (std::stod / std::stol syntax), then stored in v.
bool parse_number(const std::string& text, double& v);
bool parse_number(const std::string& text, long& v);

// A refused flag value found after parsing (in a command's callback): glassbox prints it as it
// prints CLI11's own refusals ("--flag: message") and exits with 1.
[[noreturn]] void refuse_flag(const std::string& flag, const std::string& message);

class Flag {  // one option or flag of a command
 public:
  explicit Flag(CLI::Option* option) : option_(option) {}
  Flag* required();
  Flag* capture_default_str();  // show the variable's value at declaration as the default
  Flag* check(const Check& c);
  Flag* needs(Flag* other);     // refused unless `other` is given too
  Flag* default_val(int v);     // set the variable and show v as the default
  Flag* default_val(double v);
  Flag* default_val(const std::string& v);
  Flag* allow_empty();          // an empty value is a value (an empty list); others are refused
  CLI::Option* cli() { return option_; }

 private:
  CLI::Option* option_;
};

class Command {  // the program or one of its subcommands; owns the Flags and Commands it hands out
 public:
  explicit Command(CLI::App* app);
  ~Command();
  Command* add_subcommand(const std::string& name, const std::string& description);
  Flag* add_option(const std::string& name, std::string& v, const std::string& description = "");
  Flag* add_option(const std::string& name, int& v, const std::string& description = "");
  Flag* add_option(const std::string& name, unsigned long& v, const std::string& description = "");
  Flag* add_option(const std::string& name, float& v, const std::string& description = "");
  Flag* add_option(const std::string& name, double& v, const std::string& description = "");
  Flag* add_option(const std::string& name, std::vector<std::string>& v, const std::string& description = "");
  Flag* add_flag(const std::string& name, bool& v, const std::string& description = "");
  Flag* get_option(const std::string& name);  // a flag added before
  void callback(std::function<void()> run);    // runs when the command was given, after parsing
  size_t count(const std::string& name) const;  // how often the flag was given
  bool has_subcommand(const std::string& name) const;
  CLI::App* cli() { return app_; }  // for the few sources that include CLI11 themselves

 private:
  Flag* wrap(CLI::Option* option);
  CLI::App* app_;
  std::deque<Flag> flags_;
  std::vector<std::unique_ptr<Command>> commands_;
};

}  // namespace gb
