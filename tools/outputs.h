// What a folder command wrote into its --out folder, kept in <out>/.glassbox-<command> (the size,
// modification time and path of each file). A rerun into the same folder then says which files an
// earlier run of that command left there that this run did not rewrite (another method, fewer
// inputs): they are not in this run's summary. Nothing is deleted, since they may be wanted; the
// note names them, and keeps naming them until they are removed or rewritten. A file changed
// since glassbox wrote it is no longer glassbox's and is dropped from the record.
#pragma once
#include <string>

namespace gb {

// The command whose folders are recorded (set for each subcommand before it runs; tools/flags.cpp).
void set_output_command(const std::string& name);
// Starts the record of `dir` for the current command (make_out_dir calls it). Once per folder.
void begin_output_record(const std::string& dir);
// After the command: writes each folder's record and, when it succeeded, prints the note about
// files an earlier run left. Never throws (a record that cannot be written is a note on stderr).
void end_output_records(bool succeeded);

}  // namespace gb
