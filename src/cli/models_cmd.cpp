#include "cli_util.h"
#include "commands.h"

#include <stdio.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/catalog/catalog.h"
#include "lumen/image/decode.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/scan.h"
#include "lumen/meta/exif.h"
#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_files.h"
#include "lumen/ml/registry.h"
#include "lumen/ml/text_encoder.h"
#include "lumen/pipeline/pipeline.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/search/flat_index.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

namespace lumen::cli {

int RunModels(const std::string& action, const Options& o) {
  SetupLogging(o);
  if (action == "list") {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : ml::Registry()) {
      std::string path = ml::ModelsDir() + "/" + m.name;
      bool installed = std::filesystem::exists(path + "/lumen-manifest.json");
      j.push_back({{"name", m.name},
                   {"repo", m.repo},
                   {"family", m.family},
                   {"image_size", m.image_size},
                   {"dim", m.dim},
                   {"installed", installed},
                   {"path", path}});
    }
    if (o.json_out) {
      std::puts(json::Dump(j, 2).c_str());
    } else {
      std::printf("%-26s %-32s %-7s %5s %5s  %s\n", "name", "repository", "family", "size", "dim",
                  "installed");
      for (const auto& m : j)
        std::printf("%-26s %-32s %-7s %5d %5d  %s\n", m["name"].get<std::string>().c_str(),
                    m["repo"].get<std::string>().c_str(), m["family"].get<std::string>().c_str(),
                    m["image_size"].get<int>(), m["dim"].get<int>(),
                    m["installed"].get<bool>() ? "yes" : "no");
    }
    return kExitOk;
  }
  const ml::RegistryEntry* entry = ml::FindModel(o.model_name);
  if (action == "path") {
    if (!entry) {
      log::Error(
          fmt::format("unknown model {} (lumen models list shows the known ones)", o.model_name));
      return kExitError;
    }
    std::printf("%s\n", ml::ResolveModelPath(o.model_name).c_str());
    return kExitOk;
  }
  if (action == "pull") {
    if (!entry) {
      log::Error(
          fmt::format("unknown model {} (lumen models list shows the known ones)", o.model_name));
      return kExitError;
    }
    ml::PullOptions po;
    if (!o.base_url.empty())
      po.base_url = o.base_url;
    else if (const char* b = std::getenv("LUMEN_HF_BASE"); b && *b)
      po.base_url = b;
    Progress progress(Progress::Detect(o.quiet, o.json_logs));
    po.progress = [&](const std::string&, uint64_t done, uint64_t total) {
      progress.Update(done, total, done, 0);
    };
    std::string dest = ml::ResolveModelPath(o.model_name);
    Status st = ml::Pull(*entry, dest, po);
    progress.Finish();
    if (!st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
    log::Info(fmt::format("{} is in {}", o.model_name, dest));
    return kExitOk;
  }
  std::string path = ml::ResolveModelPath(o.model_name);
  if (action == "verify") {
    auto problems = ml::Verify(path, entry);
    if (!problems.ok()) {
      log::Error(problems.status().message());
      return kExitError;
    }
    for (const auto& p : *problems) log::Error(fmt::format("{}: {}", path, p));
    if (!problems->empty()) return kExitSomeFailed;
    auto enc = ml::ImageEncoder::Load(path, {});
    if (!enc.ok()) {
      log::Error(enc.status().message());
      return kExitSomeFailed;
    }
    auto txt = ml::TextEncoder::Load(path, {});
    log::Info(
        fmt::format("{}: files intact; image tower loads ({}-dim){}", path, (*enc)->dim(),
                    txt.ok() ? "; text tower loads" : "; text tower: " + txt.status().message()));
    return txt.ok() ? kExitOk : kExitSomeFailed;
  }
  if (action == "convert") {
    ml::GgufType t = o.convert_type == "f32"    ? ml::GgufType::kF32
                     : o.convert_type == "q8_0" ? ml::GgufType::kQ8_0
                     : o.convert_type == "q4_0" ? ml::GgufType::kQ4_0
                                                : ml::GgufType::kF16;
    Status st = ml::ConvertToGguf(path, o.convert_out, t);
    if (!st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
    log::Info(fmt::format("wrote {} ({})", o.convert_out, o.convert_type));
    return kExitOk;
  }
  return kExitError;
}

}  // namespace lumen::cli
