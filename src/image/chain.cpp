#include "lumen/image/chain.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace lumen {
namespace {

struct Spec {
  std::string_view name;
  int min_args, max_args;
  std::string_view usage;
};

constexpr std::array<Spec, 22> kOps = {{
    {"fit", 1, 1, "fit:WxH (fit inside, keep aspect)"},
    {"fill", 1, 2, "fill:WxH[:centre|attention|entropy] (cover and crop)"},
    {"resize", 1, 2, "resize:SCALE[:lanczos3|lanczos2|cubic|linear|nearest]"},
    {"crop", 1, 4, "crop:X:Y:W:H or crop:WxH[:attention|entropy|centre]"},
    {"rotate", 1, 1, "rotate:DEGREES"},
    {"autorotate", 0, 0, "autorotate"},
    {"flip", 1, 1, "flip:h|v"},
    {"blur", 1, 1, "blur:SIGMA"},
    {"sharpen", 0, 3, "sharpen[:SIGMA[:AMOUNT[:THRESHOLD]]]"},
    {"brightness", 1, 1, "brightness:FACTOR"},
    {"contrast", 1, 1, "contrast:FACTOR"},
    {"saturation", 1, 1, "saturation:FACTOR"},
    {"gamma", 1, 1, "gamma:VALUE"},
    {"grayscale", 0, 0, "grayscale"},
    {"edges", 0, 1, "edges[:sobel|canny]"},
    {"border", 1, 2, "border:PX[:COLOR]"},
    {"watermark", 1, 5, "watermark:TEXT[:SIZE[:POSITION[:OPACITY[:FONT]]]]"},
    {"overlay", 1, 3, "overlay:IMAGE[:POSITION[:OPACITY]]"},
    {"strip", 0, 0, "strip (drop metadata)"},
    {"keep", 0, 0, "keep (metadata and ICC)"},
    {"lossless", 0, 0, "lossless (webp/avif/jpeg-xl)"},
    {"effort", 1, 1, "effort:0-9 (encoder effort)"},
}};
constexpr std::array<std::string_view, 6> kFormats = {"jpeg", "jpg", "webp", "avif", "png", "tiff"};
constexpr std::array<std::string_view, 5> kPositions = {"north-west", "north-east", "south-west",
                                                        "south-east", "centre"};

bool Number(std::string_view s, double* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && p == end && std::isfinite(*out);
}

bool Size(std::string_view s, int* w, int* h) {
  const size_t x = s.find('x');
  double a, b;
  if (x == std::string_view::npos || !Number(s.substr(0, x), &a) || !Number(s.substr(x + 1), &b))
    return false;
  if (a < 1 || b < 1 || a > 100000 || b > 100000 || a != std::floor(a) || b != std::floor(b))
    return false;
  *w = int(a), *h = int(b);
  return true;
}

}  // namespace

bool ParseColour(std::string_view text, std::vector<double>* rgb) {
  if (text == "black" || text == "white") {
    rgb->assign(3, text == "white" ? 255.0 : 0.0);
    return true;
  }
  if (text.size() != 7 || text[0] != '#') return false;
  std::vector<double> v;
  for (size_t i = 1; i < 7; i += 2) {
    int byte = 0;
    const char* from = text.data() + i;
    if (!std::isxdigit(static_cast<unsigned char>(from[0])) ||
        !std::isxdigit(static_cast<unsigned char>(from[1])))
      return false;
    auto [p, ec] = std::from_chars(from, from + 2, byte, 16);
    if (ec != std::errc() || p != from + 2) return false;
    v.push_back(double(byte));
  }
  *rgb = std::move(v);
  return true;
}

bool ParseNumber(std::string_view text, double* out) {
  return Number(text, out);
}

double ArgNumber(const std::string& arg) {
  double v = 0;
  return Number(arg, &v) ? v : 0;
}

void ArgSize(const std::string& arg, int* w, int* h) {
  if (!Size(arg, w, h)) *w = *h = 0;
}

Result<std::vector<ChainOp>> SplitChain(std::string_view text) {
  auto bad = [&](size_t pos, const std::string& why) {
    return Status::Invalid(fmt::format("chain '{}': {} at position {}", text, why, pos));
  };
  // Split into operations and arguments, honouring quotes.
  std::vector<ChainOp> raw;
  ChainOp cur;
  std::string field;
  size_t field_pos = 1;
  bool quoted = false, was_quoted = false, in_name = true;
  auto end_field = [&]() -> Status {
    if (in_name) {
      if (field.empty())
        return Status::Invalid(
            fmt::format("chain '{}': empty operation at position {}", text, field_pos));
      cur.name = field;
      cur.pos = field_pos;
      in_name = false;
    } else {
      cur.args.push_back(field);
    }
    field.clear();
    was_quoted = false;
    return Status::Ok();
  };
  for (size_t i = 0; i <= text.size(); ++i) {
    const bool end = i == text.size();
    const char c = end ? ',' : text[i];
    if (quoted) {
      if (end) return bad(field_pos, "unterminated quote");
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      if (in_name || !field.empty() || was_quoted)
        return bad(i + 1, "a quote must open an argument");
      quoted = was_quoted = true;
      continue;
    }
    if (c == ':' || c == ',') {
      LUMEN_RETURN_IF_ERROR(end_field());
      field_pos = i + 2;
      if (c == ',') {
        raw.push_back(std::move(cur));
        cur = ChainOp();
        in_name = true;
      }
      continue;
    }
    if (was_quoted) return bad(i + 1, "text after a closing quote");
    if (in_name && !(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
      return bad(i + 1, fmt::format("unexpected '{}' in an operation name", c));
    field += c;
  }
  return raw;
}

Result<Chain> ParseChain(std::string_view text) {
  auto bad = [&](size_t pos, const std::string& why) {
    return Status::Invalid(fmt::format("chain '{}': {} at position {}", text, why, pos));
  };
  auto split = SplitChain(text);
  if (!split.ok()) return split.status();
  std::vector<ChainOp>& raw = *split;
  Chain chain;
  for (size_t k = 0; k < raw.size(); ++k) {
    ChainOp& op = raw[k];
    std::string name = op.name;
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    const size_t argpos = op.pos + name.size() + 1;
    if (name == "svg") {
      if (k + 1 != raw.size()) return bad(op.pos, "the output format must be the last operation");
      chain.format = "svg";
      size_t at = argpos;
      for (const std::string& a : op.args) {
        const size_t eq = a.find('=');
        const std::string key = a.substr(0, eq), value = eq == a.npos ? "" : a.substr(eq + 1);
        double v = 0;
        const bool num = Number(value, &v);
        if (key == "preset") {
          if (value != "logo" && value != "illustration" && value != "photo")
            return bad(
                at, fmt::format("svg preset must be logo, illustration or photo, not '{}'", value));
        } else if (key == "colors" || key == "colours") {
          if (!num || v < 2 || v > 64 || v != std::floor(v))
            return bad(at, fmt::format("svg colors must be 2-64, not '{}'", value));
        } else if (key == "speckle") {
          if (!num || v < 0 || v > 10000 || v != std::floor(v))
            return bad(at, fmt::format("svg speckle must be 0-10000 pixels, not '{}'", value));
        } else if (key == "smooth") {
          if (!num || v < 0 || v > 1.34)
            return bad(at, fmt::format("svg smooth must be 0-1.34, not '{}'", value));
        } else if (key == "denoise") {
          if (!num || v < 0 || v > 8)
            return bad(at, fmt::format("svg denoise must be 0-8, not '{}'", value));
        } else {
          return bad(
              at, fmt::format("unknown svg setting '{}' (preset, colors, speckle, smooth, denoise)",
                              a));
        }
        // Numbers canonical ("1e1" is 10): the cache key and the converter read the same text.
        chain.svg.emplace_back(key == "colours" ? "colors" : key,
                               key == "preset" ? value
                               : key == "smooth" || key == "denoise"
                                   ? fmt::format("{:g}", v)
                                   : fmt::format("{}", int64_t(v)));
        at += a.size() + 1;
      }
      // Canonical order, the last of a repeated key kept.
      static constexpr std::array<std::string_view, 5> kOrder = {"preset", "colors", "speckle",
                                                                 "smooth", "denoise"};
      std::vector<std::pair<std::string, std::string>> sorted;
      for (std::string_view key : kOrder)
        for (auto it = chain.svg.rbegin(); it != chain.svg.rend(); ++it)
          if (it->first == key) {
            sorted.push_back(*it);
            break;
          }
      chain.svg = std::move(sorted);
      break;
    }
    if (std::find(kFormats.begin(), kFormats.end(), name) != kFormats.end()) {
      if (k + 1 != raw.size()) return bad(op.pos, "the output format must be the last operation");
      if (op.args.size() > 1) return bad(op.pos, fmt::format("{} takes one quality", name));
      chain.format = name == "jpg" ? "jpeg" : name;
      if (!op.args.empty()) {
        double q;
        if (!Number(op.args[0], &q) || q < 1 || q > 100 || q != std::floor(q))
          return bad(argpos, fmt::format("quality must be 1-100, not '{}'", op.args[0]));
        chain.quality = int(q);
      }
      break;
    }
    auto spec =
        std::find_if(kOps.begin(), kOps.end(), [&](const Spec& s) { return s.name == name; });
    if (spec == kOps.end()) return bad(op.pos, fmt::format("unknown operation '{}'", op.name));
    const int n = int(op.args.size());
    if (n < spec->min_args || n > spec->max_args)
      return bad(
          op.pos,
          fmt::format(
              "{} takes {} (usage: {})", name,
              spec->min_args == spec->max_args
                  ? fmt::format("{} argument{}", spec->min_args, spec->min_args == 1 ? "" : "s")
                  : fmt::format("{} to {} arguments", spec->min_args, spec->max_args),
              spec->usage));
    auto num = [&](size_t i, double lo, double hi, const char* what) -> Status {
      double v;
      if (!Number(op.args[i], &v) || v < lo || v > hi)
        return Status::Invalid(
            fmt::format("chain '{}': {} must be a number in {}..{}, not '{}' "
                        "at position {}",
                        text, what, lo, hi, op.args[i], op.pos));
      return Status::Ok();
    };
    int w, h;
    if (name == "fit" || name == "fill") {
      if (!Size(op.args[0], &w, &h))
        return bad(argpos, fmt::format("{} needs WxH, not '{}'", name, op.args[0]));
    } else if (name == "resize") {
      LUMEN_RETURN_IF_ERROR(num(0, 0.001, 100, "the scale"));
    } else if (name == "crop") {
      if (op.args.size() == 4) {
        for (size_t i = 0; i < 4; ++i) LUMEN_RETURN_IF_ERROR(num(i, 0, 1e6, "a crop box value"));
      } else if (!Size(op.args[0], &w, &h) || op.args.size() > 2) {
        return bad(argpos, "crop needs X:Y:W:H or WxH[:attention|entropy|centre]");
      }
    } else if (name == "rotate") {
      LUMEN_RETURN_IF_ERROR(num(0, -360, 360, "the angle"));
    } else if (name == "flip") {
      if (op.args[0] != "h" && op.args[0] != "v") return bad(argpos, "flip takes h or v");
    } else if (name == "blur") {
      LUMEN_RETURN_IF_ERROR(num(0, 0.01, 1000, "sigma"));
    } else if (name == "sharpen") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, 0.01, 100, "sigma"));
      if (n > 1) LUMEN_RETURN_IF_ERROR(num(1, 0, 100, "the amount"));
      if (n > 2) LUMEN_RETURN_IF_ERROR(num(2, 0, 1, "the threshold"));
    } else if (name == "brightness" || name == "contrast" || name == "saturation") {
      LUMEN_RETURN_IF_ERROR(num(0, 0, 10, "the factor"));
    } else if (name == "gamma") {
      LUMEN_RETURN_IF_ERROR(num(0, 0.01, 10, "gamma"));
    } else if (name == "edges") {
      if (n == 1 && op.args[0] != "sobel" && op.args[0] != "canny")
        return bad(argpos, "edges takes sobel or canny");
    } else if (name == "border") {
      LUMEN_RETURN_IF_ERROR(num(0, 0, 10000, "the border width"));
      std::vector<double> rgb;
      if (n > 1 && !ParseColour(op.args[1], &rgb))
        return bad(
            argpos + op.args[0].size() + 1,
            fmt::format("border colour must be black, white or #RRGGBB, not '{}'", op.args[1]));
    } else if (name == "watermark" || name == "overlay") {
      if (op.args[0].empty())
        return bad(argpos,
                   fmt::format("{} needs {}", name, name == "watermark" ? "text" : "an image"));
      const size_t pos_arg = name == "watermark" ? 2 : 1;
      if (name == "watermark" && n > 1) LUMEN_RETURN_IF_ERROR(num(1, 4, 2000, "the text size"));
      if (size_t(n) > pos_arg &&
          std::find(kPositions.begin(), kPositions.end(), op.args[pos_arg]) == kPositions.end())
        return bad(op.pos, fmt::format("position must be one of north-west, north-east, "
                                       "south-west, south-east, centre, not '{}'",
                                       op.args[pos_arg]));
      if (size_t(n) > pos_arg + 1) LUMEN_RETURN_IF_ERROR(num(pos_arg + 1, 0, 1, "the opacity"));
    } else if (name == "effort") {
      LUMEN_RETURN_IF_ERROR(num(0, 0, 9, "the effort"));
    }
    op.name = name;
    chain.ops.push_back(std::move(op));
  }
  return chain;
}

std::string CanonicalChain(const Chain& chain) {
  std::string out;
  auto arg = [&](const std::string& a) {
    out += ':';
    const bool quote = a.empty() || a.find_first_of(",:\" ") != std::string::npos;
    if (!quote) {
      out += a;
      return;
    }
    out += '"';
    for (char c : a) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    out += '"';
  };
  for (const ChainOp& op : chain.ops) {
    if (!out.empty()) out += ',';
    out += op.name;
    for (const auto& a : op.args) arg(a);
  }
  if (!chain.format.empty()) {
    if (!out.empty()) out += ',';
    out += chain.format;
    if (chain.quality > 0) out += fmt::format(":{}", chain.quality);
    for (const auto& [key, value] : chain.svg) out += ":" + key + "=" + value;
  }
  return out;
}

bool ShrinkSize(const ChainOp& lead, int uw, int uh, int* fw, int* fh) {
  double s = ArgNumber(lead.args[0]);  // resize
  if (lead.name != "resize") {
    int tw, th;
    ArgSize(lead.args[0], &tw, &th);
    const double sx = double(tw) / uw, sy = double(th) / uh;
    s = lead.name == "fit" ? std::min(sx, sy) : std::max(sx, sy);
    if (s >= 1) return false;
  }
  *fw = std::max(1, int(std::lround(uw * s)));
  *fh = std::max(1, int(std::lround(uh * s)));
  return true;
}

}  // namespace lumen
