// lumen organize / undo / redo / history, and the journaled actions of lumen dupes.
#include <time.h>

#include <cstdio>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "lumen/catalog/journal.h"
#include "lumen/organize/duplicates.h"
#include "lumen/organize/execute.h"
#include "lumen/organize/plan.h"
#include "lumen/organize/template.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

namespace lumen::cli {
namespace {

std::string Abs(const std::string& p) {
  std::error_code ec;
  std::string a = std::filesystem::absolute(p, ec).lexically_normal().string();
  while (a.size() > 1 && a.ends_with('/')) a.pop_back();
  return a;
}

std::string P(const std::string& path) {
  return log::Printable(path);
}

const char* Verb(OpKind k, bool past) {
  switch (k) {
    case OpKind::kCopy:
      return past ? "copied" : "copy";
    case OpKind::kLink:
      return past ? "linked" : "link";
    case OpKind::kReplaceLink:
      return past ? "replaced by hard links" : "replace by a hard link";
    default:
      return past ? "moved" : "move";
  }
}

organize::Fields FieldsOf(const Catalog::Placed& p) {
  organize::Fields f;
  if (p.captured_at && p.captured_at->size() >= 10) {
    const std::string& c = *p.captured_at;
    f.values["year"] = c.substr(0, 4);
    f.values["month"] = c.substr(5, 2);
    f.values["day"] = c.substr(8, 2);
    f.values["date"] = c.substr(0, 10);
  }
  const std::string make = p.make.value_or(""), model = p.model.value_or("");
  if (!make.empty()) f.values["make"] = make;
  if (!model.empty()) f.values["model"] = model;
  std::string camera = model;
  if (!make.empty() && !model.starts_with(make.substr(0, make.find(' '))))
    camera = make + (model.empty() ? "" : " " + model);
  if (!camera.empty()) f.values["camera"] = camera;
  f.tags = p.tags;
  if (p.enrichment) {
    const auto j = nlohmann::json::parse(*p.enrichment, nullptr, false);
    if (j.is_object()) {
      if (j.contains("file_name") && j["file_name"].is_string())
        f.values["ai_name"] = j["file_name"].get<std::string>();
      if (j.contains("folder_name") && j["folder_name"].is_string())
        f.values["ai_folder"] = j["folder_name"].get<std::string>();
    }
  }
  return f;
}

// The plan as a tree of destination folders (up to 10 files each unless verbose).
void PrintPlan(const organize::Plan& plan, const std::string& dest, bool verbose) {
  std::map<std::string, std::vector<const JournalOp*>> by_dir;
  for (const auto& op : plan.ops)
    if (op.kind != OpKind::kMkdir && op.state == OpState::kPending)
      by_dir[std::filesystem::path(op.dst).parent_path().string()].push_back(&op);
  std::map<std::string, bool> made;
  for (const auto& op : plan.ops)
    if (op.kind == OpKind::kMkdir) made[op.dst] = true;
  for (const auto& [dir, ops] : by_dir) {
    std::string shown = dir.starts_with(dest) ? dir.substr(dest.size()) : dir;
    std::printf("%s%s/  (%zu)%s\n", P(dest).c_str(), P(shown).c_str(), ops.size(),
                made.count(dir) ? "  [new folder]" : "");
    size_t n = 0;
    for (const JournalOp* op : ops) {
      if (!verbose && n++ >= 10) {
        std::printf("    ... and %zu more\n", ops.size() - 10);
        break;
      }
      std::printf("  + %s  <- %s\n", P(std::filesystem::path(op->dst).filename().string()).c_str(),
                  P(op->src).c_str());
    }
  }
  for (const auto& op : plan.ops)
    if (op.state == OpState::kSkipped && (verbose || op.reason.starts_with("identical")))
      std::printf("  = %s: %s\n", P(op.src).c_str(), P(op.reason).c_str());
    else if (op.state == OpState::kSkipped && op.reason != organize::kNoDescription)
      log::Warn(fmt::format("{}: {}", P(op.src), op.reason));
  if (plan.undescribed && !verbose)
    log::Warn(fmt::format(
        "{} photos skipped: the template uses {{ai_name}}/{{ai_folder}} and they have {} "
        "(--verbose lists them; a fallback such as {{ai_name|untitled}} places them anyway)",
        plan.undescribed, organize::kNoDescription));
}

nlohmann::json PlanJson(int64_t run, const organize::Plan& plan) {
  nlohmann::json j{{"run", run},
                   {"photos", plan.photos},
                   {"companions", plan.companions},
                   {"folders", plan.dirs},
                   {"renamed", plan.renamed},
                   {"identical", plan.identical},
                   {"in_place", plan.in_place},
                   {"changed", plan.changed},
                   {"overlap", plan.overlap},
                   {"undescribed", plan.undescribed},
                   {"refused", plan.refused}};
  j["operations"] = nlohmann::json::array();
  for (const auto& op : plan.ops) {
    nlohmann::json o{
        {"op", OpKindName(op.kind)}, {"dst", P(op.dst)}, {"state", OpStateName(op.state)}};
    if (!op.src.empty()) o["src"] = P(op.src);
    if (!op.reason.empty()) o["reason"] = op.reason;
    j["operations"].push_back(std::move(o));
  }
  return j;
}

int ReportExec(const Options& o, const char* what, int64_t run, const organize::ExecReport& r,
               double secs, const char* next) {
  size_t shown = 0;
  for (const auto& [path, why] : r.problems) {
    if (!o.verbose && shown++ >= 20) {
      log::Warn(fmt::format("... and {} more (--verbose lists them all)", r.problems.size() - 20));
      break;
    }
    log::Warn(fmt::format("{}: {}", P(path), why));
  }
  if (!o.quiet)
    log::Info(fmt::format(
        "run {}: {} {} files in {:.2f} s; {} {}, {} failed{}{}", run, what, r.done, secs, r.skipped,
        std::string_view(what) == "undid" ? "left as they were" : "skipped", r.failed,
        r.recovered ? fmt::format(" ({} found already done after an "
                                  "interruption)",
                                  r.recovered)
                    : "",
        next));
  if (r.interrupted) {
    log::Warn(
        fmt::format("stopped: {}; nothing is lost. Continue with `lumen organize --resume "
                    "{}` or roll back with `lumen undo {}`",
                    r.stop_reason, run, run));
    return Interrupted() ? 128 + InterruptSignal() : kExitSomeFailed;
  }
  return r.failed || !r.problems.empty() ? kExitSomeFailed : kExitOk;
}

Result<int64_t> PickRun(Journal& j, int64_t wanted, std::initializer_list<const char*> states,
                        const char* none) {
  auto runs = j.Runs();
  if (!runs.ok()) return runs.status();
  for (auto it = runs->rbegin(); it != runs->rend(); ++it) {
    if (wanted && it->id != wanted) continue;
    for (const char* s : states)
      if (it->state == s) return it->id;
    if (wanted) return Status::Invalid(fmt::format("run {} is {}; {}", wanted, it->state, none));
  }
  if (wanted)
    return Status::NotFound(fmt::format("there is no run {} (see lumen history)", wanted));
  return Status::NotFound(none);
}

int Apply(const Options& o, Catalog& cat, int64_t run, bool redo) {
  Journal j(&cat);
  const uint64_t t0 = MonotonicNs();
  Progress progress(Progress::Detect(o.quiet, o.json_logs));
  auto r = organize::ApplyRun(j, run, redo, &progress);
  progress.Finish();
  if (!r.ok()) {
    log::Error(r.status().message());
    return kExitError;
  }
  const std::string next = r->interrupted ? "" : fmt::format("; undo with `lumen undo {}`", run);
  return ReportExec(o, redo ? "redid" : "did", run, *r, double(MonotonicNs() - t0) / 1e9,
                    next.c_str());
}

// The plan summary's rarer counts.
std::string Extra(const organize::Plan& plan) {
  std::string s;
  if (plan.overlap)
    s += fmt::format(", {} named twice by overlapping sources (planned once)", plan.overlap);
  if (plan.undescribed)
    s += fmt::format(", {} without an AI description (skipped; run lumen describe)",
                     plan.undescribed);
  if (plan.refused)
    s += fmt::format(", {} not placed: a destination folder is a symbolic link", plan.refused);
  return s;
}

// Writes the plan to the journal, shows it, applies it with --apply.
int PlanAndMaybeApply(const Options& o, Catalog& cat, const std::string& command,
                      const nlohmann::json& args, const organize::Plan& plan,
                      const std::string& dest, OpKind mode) {
  size_t to_do = 0;
  for (const auto& op : plan.ops)
    if (op.kind != OpKind::kMkdir && op.state == OpState::kPending) ++to_do;
  if (to_do == 0) {
    if (o.json_out) std::printf("%s\n", json::Dump(PlanJson(0, plan), 2).c_str());
    if (!o.quiet) {
      if (!o.json_out) PrintPlan(plan, dest, o.verbose);
      log::Info(
          fmt::format("nothing to do: {} already in place, {} identical at the destination, "
                      "{} changed since indexed{}",
                      plan.in_place, plan.identical, plan.changed, Extra(plan)));
    }
    return kExitOk;
  }
  Journal j(&cat);
  // Where the plan's folders really are: apply, resume and undo follow no link (execute.h).
  auto run = organize::RecordRun(j, command, json::Dump(args), plan);
  if (!run.ok()) {
    log::Error(run.status().message());
    return kExitError;
  }
  if (o.json_out)
    std::printf("%s\n", json::Dump(PlanJson(*run, plan), 2).c_str());
  else if (!o.quiet)
    PrintPlan(plan, dest, o.verbose);
  if (!o.quiet)
    log::Info(fmt::format(
        "plan (run {}): {} {} photos{} into {}, {} new folders; {} renamed to avoid a name "
        "collision, {} skipped as identical to a file already there, {} already in place{}{}",
        *run, Verb(mode, false), plan.photos,
        plan.companions ? fmt::format(" and {} companion files", plan.companions) : "", P(dest),
        plan.dirs, plan.renamed, plan.identical, plan.in_place,
        plan.changed ? fmt::format(", {} changed since indexed (skipped)", plan.changed) : "",
        Extra(plan)));
  if (!o.apply) {
    if (!o.quiet)
      log::Info(
          fmt::format("dry run: nothing was changed. Apply exactly this plan with `lumen "
                      "organize --resume {}`, or run again with --apply",
                      *run));
    return kExitOk;
  }
  return Apply(o, cat, *run, false);
}

}  // namespace

int RunOrganize(const Options& o, const char* argv0) {
  SetupLogging(o);
  if (o.resume) {
    auto c = OpenCatalog(o);
    if (!c.ok()) {
      log::Error(c.status().message());
      return kExitError;
    }
    Journal j(c->get());
    auto run = PickRun(j, o.run_id, {"planned", "applying"},
                       "no planned or interrupted run to resume (see lumen history)");
    if (!run.ok() && !o.run_id && run.status().code() == Code::kNotFound) {
      if (!o.quiet) log::Info(run.status().message());
      return kExitOk;
    }
    if (!run.ok()) {
      log::Error(run.status().message());
      return kExitError;
    }
    return Apply(o, **c, *run, false);
  }
  if (o.paths.empty() || o.into.empty()) {
    log::Error("organize needs folders to organize and --into DEST (or --resume)");
    return kExitError;
  }
  if (Status st = CheckInputPaths(o.paths); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  auto tmpl = organize::Template::Parse(o.tmpl);
  if (!tmpl.ok()) {
    log::Error(tmpl.status().message());
    return kExitError;
  }
  const int modes = int(o.copy) + int(o.move) + int(o.hardlink);
  if (modes > 1) {
    log::Error("choose one of --copy, --move, --hardlink");
    return kExitError;
  }
  const OpKind mode = o.copy ? OpKind::kCopy : o.hardlink ? OpKind::kLink : OpKind::kMove;
  std::vector<std::string> roots;
  for (const auto& p : o.paths) roots.push_back(Abs(p));
  const std::string dest = Abs(o.into);
  for (const auto& r : roots) {
    std::error_code ec;
    if (!std::filesystem::exists(r, ec)) {
      log::Error(fmt::format("{}: no such file or folder", P(r)));
      return kExitError;
    }
  }
  if (!o.no_index) {
    // Bring the catalog up to date for the sources (unchanged files cost nothing).
    const int rc = IndexFirst(o, roots, !o.model.empty(), argv0);
    if (rc != kExitOk && rc != kExitSomeFailed) return rc;
  }
  auto c = OpenCatalog(o);
  if (!c.ok()) {
    log::Error(c.status().message());
    return kExitError;
  }
  std::vector<Catalog::Placed> placed;
  if (Status st = (*c)->LoadPlaced(roots, &placed); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  std::vector<organize::Source> sources;
  for (const auto& p : placed) sources.push_back({p.path, p.identity, p.hash, FieldsOf(p), p.kind});
  organize::PlanOptions po;
  po.dest = dest;
  po.mode = mode;
  po.companions = !o.no_companions;
  auto plan = organize::PlanOrganize(sources, *tmpl, po);
  if (!plan.ok()) {
    log::Error(plan.status().message());
    return kExitError;
  }
  nlohmann::json args{
      {"sources", roots}, {"dest", dest}, {"template", o.tmpl}, {"mode", OpKindName(mode)}};
  return PlanAndMaybeApply(o, **c, "organize", args, *plan, dest, mode);
}

int RunPostsAction(const Options& o, Catalog& cat, const std::vector<organize::Source>& sources,
                   const std::vector<std::string>& roots) {
  auto tmpl = organize::Template::Parse("{post}/{name}");
  if (!tmpl.ok()) {
    log::Error(tmpl.status().message());
    return kExitError;
  }
  // A post folder is an export for posting: the library keeps its photos unless told --move.
  const OpKind mode = o.move ? OpKind::kMove : o.hardlink ? OpKind::kLink : OpKind::kCopy;
  organize::PlanOptions po;
  po.dest = Abs(o.into);
  po.mode = mode;
  po.companions = false;
  auto plan = organize::PlanOrganize(sources, *tmpl, po);
  if (!plan.ok()) {
    log::Error(plan.status().message());
    return kExitError;
  }
  nlohmann::json args{{"sources", roots}, {"dest", po.dest}, {"mode", OpKindName(mode)}};
  return PlanAndMaybeApply(o, cat, "posts", args, *plan, po.dest, mode);
}

int RunDupesAction(const Options& o, Catalog& cat,
                   const std::vector<organize::DupeVictim>& victims) {
  const std::string dest = o.move_to.empty() ? "" : Abs(o.move_to);
  std::string args;
  auto plan = organize::PlanDupes(cat, victims, dest, &args);
  if (!plan.ok()) {
    log::Error(plan.status().message());
    return kExitError;
  }
  return PlanAndMaybeApply(o, cat, "dupes", nlohmann::json::parse(args), *plan, dest,
                           dest.empty() ? OpKind::kReplaceLink : OpKind::kMove);
}

int RunUndo(const Options& o, bool redo) {
  SetupLogging(o);
  auto c = OpenCatalog(o);
  if (!c.ok()) {
    log::Error(c.status().message());
    return kExitError;
  }
  Journal j(c->get());
  if (redo) {
    auto run =
        PickRun(j, o.run_id, {"undone", "applied"}, "no undone run to redo (see lumen history)");
    if (!run.ok()) {
      log::Error(run.status().message());
      return kExitError;
    }
    return Apply(o, **c, *run, true);
  }
  auto run = PickRun(j, o.run_id, {"applied", "applying", "undoing"},
                     "no applied run to undo (see lumen history)");
  if (!run.ok()) {
    log::Error(run.status().message());
    return kExitError;
  }
  const uint64_t t0 = MonotonicNs();
  Progress progress(Progress::Detect(o.quiet, o.json_logs));
  auto r = organize::UndoRun(j, *run, &progress);
  progress.Finish();
  if (!r.ok()) {
    log::Error(r.status().message());
    return kExitError;
  }
  const std::string next = fmt::format("; redo with `lumen redo {}`", *run);
  return ReportExec(o, "undid", *run, *r, double(MonotonicNs() - t0) / 1e9, next.c_str());
}

int RunHistory(const Options& o) {
  SetupLogging(o);
  auto c = OpenCatalog(o, Catalog::Mode::kReadOnly);
  if (!c.ok()) {
    log::Error(c.status().message());
    return kExitError;
  }
  Journal j(c->get());
  auto runs = j.Runs();
  if (!runs.ok()) {
    log::Error(runs.status().message());
    return kExitError;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : *runs) {
    nlohmann::json args = nlohmann::json::parse(r.args, nullptr, false);
    if (o.json_out) {
      out.push_back({{"run", r.id},
                     {"command", r.command},
                     {"args", args},
                     {"created_at", r.created_at},
                     {"state", r.state},
                     {"files", r.files},
                     {"done", r.done},
                     {"pending", r.pending},
                     {"skipped", r.skipped},
                     {"failed", r.failed},
                     {"undone", r.undone}});
      continue;
    }
    char when[32];
    time_t t = r.created_at;
    struct tm tm;
    localtime_r(&t, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    std::string what = r.command;
    if (args.is_object()) {
      if (args.contains("action")) what += " --" + args["action"].get<std::string>();
      if (args.contains("mode") && args["mode"] != "move")
        what += " --" + args["mode"].get<std::string>();
      if (args.contains("dest")) what += " -> " + args["dest"].get<std::string>();
    }
    std::printf(
        "%4lld  %s  %-8s  %lld files: %lld done, %lld undone, %lld pending, %lld skipped, "
        "%lld failed  %s\n",
        (long long)r.id, when, r.state.c_str(), (long long)r.files, (long long)r.done,
        (long long)r.undone, (long long)r.pending, (long long)r.skipped, (long long)r.failed,
        what.c_str());
  }
  if (o.json_out) std::printf("%s\n", json::Dump(out, 2).c_str());
  return kExitOk;
}

}  // namespace lumen::cli
