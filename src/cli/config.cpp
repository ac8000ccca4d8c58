#include "config.h"

// cpptoml's option<T> trips GCC 12's -Wmaybe-uninitialized at -O2 with sanitizers (inside the
// library header, where the value is never read uninitialised).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cpptoml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace lumen::cli {

namespace {
// Whether the command line gave `flag` (then it wins over a file).
bool Given(const CLI::App& cmd, const char* flag) {
  const CLI::Option* opt = cmd.get_option_no_throw(flag);
  return opt && opt->count() > 0;
}
}  // namespace

std::string ConfigPath() {
  if (const char* p = std::getenv("LUMEN_CONFIG"); p && *p) return p;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x)
    return std::string(x) + "/lumen/config.toml";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/lumen/config.toml";
}

namespace {

// "${VAR}" and "$VAR" anywhere in the value, from the environment ("" when unset).
std::string Expand(const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '$' || i + 1 >= v.size()) {
      out += v[i];
      continue;
    }
    size_t start = i + 1, end;
    if (v[start] == '{') {
      end = v.find('}', start);
      if (end == std::string::npos) {
        out += v.substr(i);
        break;
      }
      const std::string name = v.substr(start + 1, end - start - 1);
      if (const char* e = std::getenv(name.c_str())) out += e;
      i = end;
    } else {
      end = start;
      while (end < v.size() && (std::isalnum(static_cast<unsigned char>(v[end])) || v[end] == '_'))
        ++end;
      const std::string name = v.substr(start, end - start);
      if (const char* e = std::getenv(name.c_str())) out += e;
      i = end - 1;
    }
  }
  return out;
}

}  // namespace

Status ApplyConfig(const std::string& path, const CLI::App& cmd, Options* o) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::Ok();
  std::shared_ptr<cpptoml::table> root;
  try {
    root = cpptoml::parse_file(path);
  } catch (const cpptoml::parse_exception& e) {
    return Status::Invalid(fmt::format("{}: {}", path, e.what()));
  }
  auto given = [&](const char* flag) { return Given(cmd, flag); };
  auto bad = [&](const std::string& key, const char* want) {
    return Status::Invalid(fmt::format("{}: {} must be {}", path, key, want));
  };
  if (auto d = root->get_table("describe")) {
    struct Str {
      const char* key;
      const char* flag;
      std::string* to;
    };
    for (const Str& s :
         {Str{"llm", "--llm", &o->llm}, Str{"llm_model", "--llm-model", &o->llm_model},
          Str{"base_url", "--base-url", &o->base_url},
          Str{"profile", "--llm-profile", &o->llm_profile}, Str{"mmproj", "--mmproj", &o->mmproj},
          Str{"image_format", "--image-format", &o->image_format}}) {
      if (!d->contains(s.key)) continue;
      auto v = d->get_as<std::string>(s.key);
      if (!v) return bad(fmt::format("describe.{}", s.key), "a string");
      if (!given(s.flag)) *s.to = Expand(*v);
    }
    if (d->contains("llm") && !given("--llm")) {
      static const char* kinds[] = {"openai", "ollama", "anthropic", "gemini", "local"};
      if (std::find(std::begin(kinds), std::end(kinds), o->llm) == std::end(kinds))
        return bad("describe.llm", "openai, ollama, anthropic, gemini or local");
    }
    if (d->contains("api_key")) {
      auto v = d->get_as<std::string>("api_key");
      if (!v) return bad("describe.api_key", "a string");
      o->api_key = Expand(*v);
    }
    if (d->contains("image_edge")) {
      auto v = d->get_as<int64_t>("image_edge");
      if (!v || *v < 64 || *v > 4096) return bad("describe.image_edge", "an integer in 64..4096");
      if (!given("--image-edge")) o->image_edge = int(*v);
    }
  }
  if (auto profiles = root->get_table("profiles")) {
    for (const auto& [name, node] : *profiles) {
      auto t = node->as_table();
      if (!t) return bad("profiles." + name, "a table");
      auto& p = o->profiles[name];
      for (const char* key : {"rpm", "tpm", "concurrency", "timeout", "max_attempts", "window",
                              "retry_after_max", "max_wait", "max_reply_mb"}) {
        if (!t->contains(key)) continue;
        auto d = t->get_as<double>(key);
        auto i = t->get_as<int64_t>(key);
        if (!d && !i) return bad(fmt::format("profiles.{}.{}", name, key), "a number");
        const double v = d ? *d : double(*i);
        if (v < 0) return bad(fmt::format("profiles.{}.{}", name, key), "zero or more");
        p[key] = v;
      }
    }
  }
  return Status::Ok();
}

namespace {

// A TOML table as JSON (strings, booleans, numbers and arrays of them: what a recipe holds).
Result<nlohmann::json> TomlToJson(const cpptoml::table& t, const std::string& path) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, node] : t) {
    if (auto v = t.get_as<std::string>(key)) {
      j[key] = *v;
    } else if (auto b = t.get_as<bool>(key)) {
      j[key] = *b;
    } else if (auto i = t.get_as<int64_t>(key)) {
      j[key] = *i;
    } else if (auto d = t.get_as<double>(key)) {
      j[key] = *d;
    } else if (auto a = t.get_array_of<std::string>(key)) {
      j[key] = *a;
    } else {
      return Status::Invalid(fmt::format(
          "{}: {} must be a string, a boolean, a number or a list of strings", path, key));
    }
  }
  return j;
}

}  // namespace

Status ApplyRecipe(const std::string& path, const CLI::App& cmd, Options* o) {
  std::ifstream f(path);
  if (!f) return Status::Io(fmt::format("cannot read recipe {}: {}", path, std::strerror(errno)));
  nlohmann::json j;
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".json") {
    j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return Status::Invalid(fmt::format("{}: not a JSON object", path));
  } else {
    try {
      cpptoml::parser p(f);
      auto t = TomlToJson(*p.parse(), path);
      if (!t.ok()) return t.status();
      j = std::move(*t);
    } catch (const std::exception& e) {  // cpptoml's parse_exception, and anything else
      return Status::Invalid(fmt::format("{}: {}", path, e.what()));
    }
  }
  auto given = [&](const char* flag) { return Given(cmd, flag); };
  auto bad = [&](const std::string& key, const char* want) {
    return Status::Invalid(fmt::format("recipe {}: {} must be {}", path, key, want));
  };
  for (const auto& [key, v] : j.items()) {
    if (key == "chain") {
      std::string chain;
      if (v.is_string()) {
        chain = v.get<std::string>();
      } else if (v.is_array() && !v.empty()) {
        for (const auto& op : v) {
          if (!op.is_string()) return bad("chain", "a string or a list of strings");
          chain += (chain.empty() ? "" : ",") + op.get<std::string>();
        }
      } else {
        return bad("chain", "a string or a list of strings");
      }
      if (!given("--chain")) o->chain = chain;
    } else if (key == "preset" || key == "name" || key == "output") {
      if (!v.is_string()) return bad(key, "a string");
      const std::string s = v.get<std::string>();
      if (key == "preset" && !given("--preset")) o->preset = s;
      if (key == "name" && !given("--name")) o->name_template = s;
      if (key == "output" && !given("--output")) {
        // A recipe is not trusted (it may come from anyone): its output is a folder beside it,
        // never an absolute path or one that climbs out with "..". -o on the command line is
        // what names any other folder.
        const std::filesystem::path out(s);
        bool climbs = false;
        for (const auto& part : out) climbs = climbs || part == "..";
        if (s.empty() || out.is_absolute() || climbs)
          return Status::Invalid(fmt::format(
              "recipe {}: output '{}' must be a folder inside the recipe's own folder (no "
              "absolute path, no '..'); give -o for another one",
              path, s));
        o->output = (std::filesystem::path(path).parent_path() / out).string();
        // Opened beneath the recipe's folder without following links (convert_cmd.cpp).
        o->output_base = std::filesystem::path(path).parent_path().string();
        if (o->output_base.empty()) o->output_base = ".";
        o->output_rel = s;
      }
    } else if (key == "skip_existing") {
      if (!v.is_boolean()) return bad(key, "true or false");
      if (!given("--skip-existing")) o->skip_existing = v.get<bool>();
    } else {
      return Status::Invalid(fmt::format(
          "recipe {}: unknown key '{}' (chain, preset, name, skip_existing, output)", path, key));
    }
  }
  if (o->chain.empty()) return Status::Invalid(fmt::format("recipe {}: no chain", path));
  return Status::Ok();
}

}  // namespace lumen::cli
