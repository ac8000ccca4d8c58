// Destination path templates for `lumen organize`.
//
//   {year}/{month}/{camera}/{stem}_{hash8}.{ext}
//
// A field is `{name}`, `{name|fallback}` (the fallback text when the photo has no value) or
// `{name?}` (nothing when missing; an empty folder level disappears). A missing field without
// either becomes "unknown". Fields: year month day date camera make model tag tags[N] city
// name stem ext hash8 ai_name ai_folder. When the last level of the template names no file
// field (name stem ext hash8 ai_name), the template is a folder and `/{name}` is appended. When
// it names a file but gives it no extension (no {ext} or {name}, no literal ".xyz" at the end, as
// in `{ai_folder}/{ai_name}`), the photo's own extension is appended.
//
// {ai_name} and {ai_folder} come from `lumen describe`. A photo without a description is not
// given a made-up name: Expand() returns NotFound(kNoDescription) and the planner skips it,
// unless the field has a fallback or is optional ({ai_name|untitled}, {ai_folder?}).
//
// Safety: a template that is absolute, has a `.` or `..` level, or contains NUL or control
// characters is refused when parsed; field values are sanitised (`/`, `\`, control characters
// become `_`; "." and ".." become "_"; each level is cut to 200 bytes), so no expansion can leave
// the destination folder.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lumen/util/status.h"

namespace lumen::organize {

inline constexpr const char* kNoDescription = "no AI description yet; run lumen describe";

// One photo's values. A field absent from `values` (or empty) is missing.
struct Fields {
  std::map<std::string, std::string> values;
  std::vector<std::string> tags;  // most confident first
};

class Template {
 public:
  // Invalid("template '...': <why> at position N") for unknown fields, unbalanced braces, and
  // anything that could escape the destination.
  static Result<Template> Parse(std::string_view text);

  // The relative destination path for one photo ("2023/07/IMG_0001.jpg").
  Result<std::string> Expand(const Fields& f) const;

  const std::string& text() const { return text_; }

 private:
  struct Part {
    bool field = false;
    std::string text;  // literal text, or the field name
    int index = -1;    // tags[N]
    bool optional = false;
    bool has_fallback = false;
    std::string fallback;
  };
  std::string text_;
  std::vector<Part> parts_;
  bool append_ext_ = false;  // the file name has no extension of its own
};

// A value made safe as (part of) one path level.
std::string SanitizeLevel(std::string_view v);

}  // namespace lumen::organize
