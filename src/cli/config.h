// The user's configuration file, layered under the command line: a value from the file applies
// only where the flag was not given.
//
//   $LUMEN_CONFIG, else $XDG_CONFIG_HOME/lumen/config.toml, else ~/.config/lumen/config.toml
//
//   [describe]                      # lumen describe, index/process --describe
//   llm = "openai"                  # openai | ollama | anthropic | gemini | local
//   llm_model = "gpt-4o-mini"
//   base_url = "https://api.openai.com"
//   api_key = "${OPENAI_API_KEY}"   # ${VAR} is read from the environment; never printed
//   profile = "balanced"
//   image_edge = 768
//   mmproj = "/models/mmproj.gguf"  # --llm local
//
//   [profiles.balanced]             # override a built-in profile, or define a new one
//   rpm = 120
//   tpm = 0
//   concurrency = 8
//   timeout = 120
//   max_attempts = 6
#pragma once

#include <CLI/CLI.hpp>

#include "commands.h"
#include "lumen/util/status.h"

namespace lumen::cli {

std::string ConfigPath();
// Reads the file (a missing file is fine) into `o` for the options `cmd` did not get.
// Errors name the file, the key and what is wrong.
Status ApplyConfig(const std::string& path, const CLI::App& cmd, Options* o);

// A `lumen convert --recipe FILE`: the chain and its settings kept in a file, TOML or JSON (by
// the extension, .json; anything else is read as TOML). Options given on the command line win.
//
//   chain = ["fit:1600x1600", "sharpen:0.8", 'watermark:"(c) me":24:south-east:0.4', "webp:82"]
//   preset = "balanced"            # draft fast balanced high ultra
//   name = "{stem}_{w}x{h}.{ext}"
//   skip_existing = true
//   output = "web"                 # the -o folder, relative to the recipe's folder
//
// `chain` may also be one string, as on the command line. Unknown keys are errors (a typo must
// not be ignored silently); errors name the file and the key.
Status ApplyRecipe(const std::string& path, const CLI::App& cmd, Options* o);

}  // namespace lumen::cli
