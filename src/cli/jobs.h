// Private to the CLI: long video conversions as resumable jobs (issue 20) and `lumen jobs`.
//
// A job is a row in the catalog (Catalog::Job) and a folder of its own beside the output
// (".lumen-job-XXXXXX" in the output folder, so its segments are on the output's filesystem).
// The video is cut at key frames into segments (video::PlanSegments); each one is encoded to
// "seg-NNNNN.pkt.part" (lumen's packet file, video/transcode.cpp), fsynced and renamed to
// "seg-NNNNN.pkt", so a kill, a power cut or a full disk costs at most the segment under way.
// When every segment is there, one pass writes the output: the video packets from the segments,
// every other stream (audio through its filters in one run, so the leveller and the denoiser
// hear it whole; subtitles, chapters, metadata) from the input. The output is the convert's
// exclusive temporary until it is complete, then renamed.
//
// The running process holds an OFD lock (fcntl) on "lock" in the folder: a job whose row says
// running but whose lock is free was interrupted. Only folders with lumen's marker file are ever
// removed.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "commands.h"
#include "lumen/catalog/catalog.h"
#include "lumen/io/file.h"
#include "lumen/util/status.h"
#include "lumen/video/transcode.h"

namespace lumen::cli {

// What a conversion needs to become a job (and to be run again by `lumen jobs resume`).
struct VideoJobContext {
  Catalog* catalog = nullptr;
  std::mutex* catalog_mu = nullptr;
  std::string input;  // absolute
  FileIdentity input_id;
  std::string recipe;
  std::string output;      // the output file (absolute; for a sized --name, its unsized form)
  std::string job_parent;  // where the job's folder is made (the output folder)
  std::string args;        // JSON: the convert options (paths, output, preset, chain, name, ...)
  double segment_seconds = 60;
};

// Converts `input` into `out_fd` as a job when it is long enough to cut into segments (or when
// an unfinished job for the same input, recipe and output exists: it goes on from there);
// *is_job false (and nothing done) otherwise. *job_id: the job, to be finished by FinishJob once
// the output is in place.
Result<video::TranscodeReport> RunVideoJob(const VideoJobContext& ctx, const std::string& input,
                                           int out_fd, const std::string& container,
                                           const video::TranscodeSpec& spec,
                                           const video::TranscodeOptions& base, bool* is_job,
                                           int64_t* job_id);
// The output is in place: the job is done and its folder removed.
void FinishJob(Catalog* catalog, std::mutex* mu, int64_t job_id);
// The output could not be placed after all (`error`): the job stays, interrupted, and is let go.
void ReleaseJob(Catalog* catalog, std::mutex* mu, int64_t job_id, const std::string& error);
// Folders of finished, failed and cancelled jobs removed; partial segments of interrupted ones
// too (after a crash nothing else removes them).
void SweepJobs(Catalog* catalog, std::mutex* mu);
// The state as the user sees it: "interrupted" for a row saying running whose lock is free.
std::string ShownState(const Catalog::Job& job);

}  // namespace lumen::cli
