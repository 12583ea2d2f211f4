// tools/flags.h over CLI11, and the checks of command-line values, with messages that say what was
// given and what is accepted.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "data/dataset.h"
#include "data/images.h"
#include "engine/model_file.h"
#include "tools/flags.h"
#include "tools/outputs.h"

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

Check finite(double lo, double hi, bool lo_open, bool hi_open) {
  std::ostringstream d;
  d << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
  const std::string range = d.str();
  return {[=](std::string& text) -> std::string {
            double v = 0;
            // Finite as a float32 too: the engine computes in float32 (1e308 would become inf there).
            const bool inside = parse_number(text, v) && std::fabs(v) <= std::numeric_limits<float>::max() &&
                                (lo_open ? v > lo : v >= lo) &&
                                (hi_open ? v < hi : v <= hi);
            if (!inside) return "'" + text + "' is not a finite number in " + range;
            // A value above an open end that float32 rounds onto it (1e-50 for (0, inf) becomes 0,
            // which a float flag then read as "not given": the default was used without a word).
            const float f = float(v);
            std::ostringstream end;
            end << lo;
            if (lo_open && !(f > lo)) return "'" + text + "' rounds to " + end.str() + " in float32; give a number in " + range;
            return std::string();
          },
          "FLOAT in " + range};
}

Check at_least(long n) {
  return {[=](std::string& text) -> std::string {
            long v = 0;
            return parse_number(text, v) && v >= n ? std::string()
                                                   : "'" + text + "' is not a whole number >= " + std::to_string(n);
          },
          "INT >= " + std::to_string(n)};
}

Check int_in(long lo, long hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return {[=](std::string& text) -> std::string {
            long v = 0;
            return parse_number(text, v) && v >= lo && v <= hi ? std::string()
                                                               : "'" + text + "' is not a whole number in " + range;
          },
          "INT in " + range};
}

Check in_range(long lo, long hi) {
  CLI::Range range(lo, hi);
  return {[range](std::string& text) { return range(text); }, range.get_description()};
}

void refuse_flag(const std::string& flag, const std::string& message) { throw CLI::ValidationError(flag, message); }

Flag* Flag::required() {
  option_->required();
  return this;
}
Flag* Flag::capture_default_str() {
  option_->capture_default_str();
  return this;
}
Flag* Flag::check(const Check& c) {
  option_->check(CLI::Validator(c.test, c.description));
  return this;
}
Flag* Flag::needs(Flag* other) {
  option_->needs(other->option_);
  return this;
}
Flag* Flag::default_val(int v) {
  option_->default_val(v);
  return this;
}
Flag* Flag::default_val(double v) {
  option_->default_val(v);
  return this;
}
Flag* Flag::default_val(const std::string& v) {
  option_->default_val(v);
  return this;
}

Command::Command(CLI::App* app) : app_(app) {}
Command::~Command() = default;

Command* Command::add_subcommand(const std::string& name, const std::string& description) {
  commands_.push_back(std::make_unique<Command>(app_->add_subcommand(name, description)));
  return commands_.back().get();
}

Flag* Command::wrap(CLI::Option* option) { return &flags_.emplace_back(option); }

// One definition per value type: CLI11's add_option template is instantiated here only.
#define GB_ADD_OPTION(T)                                                                      \
  Flag* Command::add_option(const std::string& name, T& v, const std::string& description) { \
    return wrap(app_->add_option(name, v, description));                                      \
  }
GB_ADD_OPTION(std::string)
GB_ADD_OPTION(int)
GB_ADD_OPTION(float)
GB_ADD_OPTION(double)
GB_ADD_OPTION(std::vector<std::string>)
#undef GB_ADD_OPTION

// CLI11 reads "-1" as 2^64 - 1 and clamps a value past 2^64 - 1 to it (every --seed out of range
// was the same seed): only digits whose value fits are accepted.
Flag* Command::add_option(const std::string& name, unsigned long& v, const std::string& description) {
  const Check fits{[](std::string& text) -> std::string {
                     bool digits = !text.empty() && text.size() <= 20;
                     for (char c : text) digits = digits && c >= '0' && c <= '9';
                     errno = 0;
                     if (digits) std::strtoull(text.c_str(), nullptr, 10);
                     return digits && errno != ERANGE ? std::string()
                                                      : "'" + text + "' is not a whole number in [0, 2^64 - 1]";
                   },
                   "INT in [0, 2^64 - 1]"};
  return wrap(app_->add_option(name, v, description))->check(fits);
}

Flag* Command::add_flag(const std::string& name, bool& v, const std::string& description) {
  return wrap(app_->add_flag(name, v, description));
}

Flag* Command::get_option(const std::string& name) {
  CLI::Option* option = app_->get_option(name);
  for (Flag& f : flags_)
    if (f.cli() == option) return &f;
  return wrap(option);
}

// The image files `depth` folders below `dir` (a concept's images:DIR: 0; masks:DIR's masks: 2),
// listed as the image readers list them; a folder that cannot be listed is skipped (the command
// that reads it says so).
static void protect_images_under(const std::filesystem::path& dir, int depth, const std::string& flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  if (depth == 0) {
    try {
      for (const std::string& f : image_files_in(dir.string())) protect_input(f, flag);
    } catch (const std::exception&) {
    }
    return;
  }
  for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->path().filename().string()[0] != '.') protect_images_under(it->path(), depth - 1, flag);
}

// The images a spec makes the command read, split as its readers split it: a dataset's
// images:DIR[,c=..] (--data, --ref-data, a concept's data:SPEC[@filters]), a concept's images:DIR
// (the rest of the spec is the folder), masks:DIR (DIR/images and DIR/masks/NAME/CATEGORY).
static void protect_spec_images(const std::string& spec, bool dataset_flag, const std::string& flag) {
  namespace fs = std::filesystem;
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return;
  const std::string kind = spec.substr(0, colon), rest = spec.substr(colon + 1);
  if (kind == "images" && dataset_flag) {
    for (const std::string& f : dataset_image_files(spec)) protect_input(f, flag);
  } else if (kind == "images") {
    protect_images_under(rest, 0, flag);
  } else if (kind == "data") {
    protect_spec_images(rest.substr(0, rest.rfind('@')), true, flag);
  } else if (kind == "masks") {
    protect_images_under(fs::path(rest) / "images", 0, flag);
    protect_images_under(fs::path(rest) / "masks", 2, flag);
  }
}

// Every existing file named in a flag's value ("a.npy", "npy:x.npy,y.npy", "relu3:dir.npy",
// "baseline=b.npy", "data:npy:x.npy,y.npy@split=test") is an input of the command, protected from
// its writes (engine/model_file.h), and so are the images its folder specs make it read
// (protect_spec_images: the value, or what follows NAME= in a concept's NAME=SPEC).
// Not the flags that name outputs, nor --resume: training rewrites the checkpoint it resumes.
static void protect_named_files(const CLI::App& app) {
  namespace fs = std::filesystem;
  for (const CLI::Option* option : app.get_options()) {
    const std::string flag = option->get_name();
    if (flag == "--out" || flag == "--json" || flag == "--confusion" || flag == "--resume") continue;
    const bool dataset_flag = flag == "--data" || flag == "--ref-data";
    for (const std::string& value : option->results()) {
      std::vector<std::string> candidates = {value};
      for (size_t p = 0; p <= value.size();) {
        const size_t q = std::min(value.find_first_of(",:=@", p), value.size());
        candidates.push_back(value.substr(p, q - p));
        p = q + 1;
      }
      std::error_code ec;
      for (const std::string& c : candidates)
        if (!c.empty() && fs::is_regular_file(c, ec)) protect_input(c, flag);
      protect_spec_images(value, dataset_flag, flag);
      const size_t eq = value.find('=');
      if (eq != std::string::npos && value.find(':') > eq) protect_spec_images(value.substr(eq + 1), false, flag);
    }
  }
}

// Options whose empty value means something (bench --models '': no models, only the families).
static std::set<const CLI::Option*>& empty_allowed() {
  static std::set<const CLI::Option*> options;
  return options;
}

Flag* Flag::allow_empty() {
  empty_allowed().insert(option_);
  return this;
}

// An empty value (--index '', --data '') read as the flag not given: the default ran instead.
static void refuse_empty_values(const CLI::App& app) {
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_items_expected_min() == 0 || empty_allowed().count(option)) continue;  // (a switch: --list)
    for (const std::string& value : option->results())
      if (value.empty()) throw std::invalid_argument(option->get_name() + ": empty value (leave the flag out for its default)");
  }
}

void Command::callback(std::function<void()> run) {
  const CLI::App* app = app_;
  app_->callback([app, run = std::move(run)] {
    refuse_empty_values(*app);
    protect_named_files(*app);
    set_output_command(app->get_name());
    run();
  });
}

size_t Command::count(const std::string& name) const { return app_->count(name); }

bool Command::has_subcommand(const std::string& name) const {
  for (const CLI::App* c : app_->get_subcommands({}))
    if (c->get_name() == name) return true;
  return false;
}

}  // namespace gb
