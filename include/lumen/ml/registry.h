// Known models, where they live locally, and how to fetch and check them.
//
// The registry names the models lumen knows (SigLIP base 224/384, CLIP ViT-B/32 and B/16) with
// their Hugging Face repository and file list. Local models live in
// $LUMEN_MODELS, else $XDG_DATA_HOME/lumen/models, else ~/.local/share/lumen/models, one folder
// per name. Pull() downloads each file from `{base_url}/{repo}/resolve/main/{file}` into
// "{file}.part", resuming a partial file with an HTTP Range request, checks its SHA-256 (the
// registry's value when it has one; otherwise the value is recorded at the first download,
// trust-on-first-use) and renames it into place. Every download ends with lumen-manifest.json
// (file -> size, sha256), which Verify() re-checks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen::ml {

struct ModelFile {
  std::string name;
  std::string sha256;  // empty: not known in advance
};

struct RegistryEntry {
  std::string name;  // "siglip-base-patch16-224"
  std::string repo;  // "google/siglip-base-patch16-224"
  std::string family;
  int image_size = 224;
  int dim = 768;
  std::vector<ModelFile> files;
};

const std::vector<RegistryEntry>& Registry();
const RegistryEntry* FindModel(const std::string& name);
std::string ModelsDir();
// A registry name resolves to its folder under ModelsDir(); anything else is taken as a path.
std::string ResolveModelPath(const std::string& name_or_path);
// The default model for --quality fast (224) or high (384).
std::string DefaultModelName(bool high_quality);

std::string Sha256File(const std::string& path, Status* error);

struct PullOptions {
  std::string base_url = "https://huggingface.co";
  std::function<void(const std::string& file, uint64_t done, uint64_t total)> progress;
  long timeout_s = 600;
};
Status Pull(const RegistryEntry& model, const std::string& dest_dir, const PullOptions& opt);

// Re-checks sizes and SHA-256 of every file in dest_dir/lumen-manifest.json (and against the
// registry's values when known). Returns the problems found, one line each; empty means good.
Result<std::vector<std::string>> Verify(const std::string& dir, const RegistryEntry* model);

}  // namespace lumen::ml
