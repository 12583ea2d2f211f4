#include "tools/outputs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "engine/model_file.h"

namespace gb {

namespace {

namespace fs = std::filesystem;

struct Stamp {
  long long size = -1, mtime_ns = -1;
  bool operator==(const Stamp& o) const { return size == o.size && mtime_ns == o.mtime_ns; }
};

struct Record {
  fs::path dir;  // as made absolute and normal when the record began
  std::string command;
  std::map<std::string, Stamp> before;  // the last run's list: path relative to dir -> stamp
};

std::mutex mu;
std::string command_name;
std::vector<Record> records;
std::vector<std::string> written;  // every path atomic_write wrote in this process

void on_write(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu);
  written.push_back(path);
}

// A regular file's size and modification time; size -1 when it is none.
Stamp stamp_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  return {static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec};
}

fs::path absolute_normal(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::absolute(p).lexically_normal() : a;
}

fs::path record_path(const Record& r) { return r.dir / (".glassbox-" + r.command); }

// The record file's lines "SIZE MTIME_NS PATH"; a path that leaves the folder, or a line that names
// no file's stamp, is not taken. Read only when it is a regular file of a sane size: a FIFO there
// blocked the command for good, a link to /dev/zero would have been read without end.
std::map<std::string, Stamp> read_record(const fs::path& file) {
  std::map<std::string, Stamp> out;
  const Stamp own = stamp_of(file);
  if (own.size < 0 || own.size > (64LL << 20)) return out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    Stamp s;
    std::string rel;
    if (!(fields >> s.size >> s.mtime_ns) || s.size < 0 || !std::getline(fields >> std::ws, rel) || rel.empty()) continue;
    const fs::path p = fs::path(rel).lexically_normal();
    if (p.is_absolute() || p.empty() || *p.begin() == "..") continue;
    out[p.string()] = s;
  }
  return out;
}

// This run's files under r.dir, relative to it (the record files themselves left out).
std::set<std::string> written_under(const Record& r, const std::vector<std::string>& paths) {
  std::set<std::string> out;
  for (const std::string& p : paths) {
    const fs::path rel = absolute_normal(p).lexically_relative(r.dir);
    if (rel.empty() || *rel.begin() == ".." || rel.filename().string().rfind(".glassbox-", 0) == 0) continue;
    out.insert(rel.string());
  }
  return out;
}

void end_record(const Record& r, const std::vector<std::string>& paths, bool succeeded) {
  const std::set<std::string> now = written_under(r, paths);
  std::vector<std::string> left;  // the earlier run's files, unchanged since, not rewritten now
  std::ostringstream text;
  for (const std::string& rel : now)
    if (const Stamp s = stamp_of(r.dir / rel); s.size >= 0) text << s.size << ' ' << s.mtime_ns << ' ' << rel << '\n';
  for (const auto& [rel, s] : r.before)
    if (!now.count(rel) && stamp_of(r.dir / rel) == s) {
      left.push_back(rel);
      text << s.size << ' ' << s.mtime_ns << ' ' << rel << '\n';
    }
  if (now.empty() && left.empty() && r.before.empty()) return;  // nothing of ours here
  atomic_write(record_path(r).string(), text.str());
  if (!succeeded || left.empty()) return;
  std::string some;
  for (size_t i = 0; i < left.size() && i < 3; ++i) some += (i ? ", " : "") + left[i];
  std::fprintf(stderr,
               "note: %s holds %zu file%s an earlier `glassbox %s` run wrote and this one did not (%s%s); they are "
               "not in this run's summary: remove them or write to a fresh folder (glassbox's record of its files "
               "there: %s)\n",
               r.dir.c_str(), left.size(), left.size() == 1 ? "" : "s", r.command.c_str(), some.c_str(),
               left.size() > 3 ? ", ..." : "", record_path(r).c_str());
}

}  // namespace

void set_output_command(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu);
  command_name = name;
}

void begin_output_record(const std::string& dir) {
  const fs::path abs = absolute_normal(dir);
  std::lock_guard<std::mutex> lock(mu);
  if (command_name.empty()) return;
  for (const Record& r : records)
    if (r.dir == abs && r.command == command_name) return;
  Record r{abs, command_name, {}};
  r.before = read_record(record_path(r));
  records.push_back(std::move(r));
  set_write_hook(on_write);
}

void end_output_records(bool succeeded) {
  std::vector<Record> rs;
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> lock(mu);
    rs.swap(records);
    paths = written;
  }
  for (const Record& r : rs) {
    try {
      end_record(r, paths, succeeded);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "note: the list of files in %s was not updated: %s\n", r.dir.c_str(), e.what());
    }
  }
}

}  // namespace gb
