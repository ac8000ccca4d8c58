// The operation-chain language of `lumen convert` (issue 7):
//
//   fit:1600x1600,sharpen:0.5:1.2,watermark:"(c) me":24:south-east:0.4,webp:82
//
// A chain is operations separated by ',', each `name` or `name:arg:arg...`. An argument may be
// double-quoted to hold ',', ':' or spaces ("" inside quotes is a literal quote). The last
// operation may be an output format (jpeg|webp|avif|png|tiff[:QUALITY]), or `svg` with
// key=value settings (svg:colors=16:preset=logo, image/vectorize.h). Every error names the
// position (1-based) of what is wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lumen/util/status.h"

namespace lumen {

struct ChainOp {
  std::string name;
  std::vector<std::string> args;
  size_t pos = 0;  // 1-based offset of the name in the chain text
};

struct Chain {
  std::vector<ChainOp> ops;  // image operations, in order
  std::string format;        // output: "" (keep the input's), jpeg, webp, avif, png, tiff, svg
  int quality = 0;           // 0: the format's default
  // svg: its settings as given (checked), in canonical order: preset, colors, speckle, smooth.
  std::vector<std::pair<std::string, std::string>> svg;
};

// Splits `text` into operations and their arguments (quotes honoured, names checked for their
// characters only): the syntax that ParseChain and the video chains (video/transcode.h) share.
Result<std::vector<ChainOp>> SplitChain(std::string_view text);

// Parses and checks `text`: known operations, argument counts, numbers and ranges.
Result<Chain> ParseChain(std::string_view text);

// The arguments of a parsed chain (ParseChain has checked them): a number, and a WxH size.
double ArgNumber(const std::string& arg);
// A whole finite decimal number (no spaces, no trailing text): the chains' number syntax.
bool ParseNumber(std::string_view text, double* out);
void ArgSize(const std::string& arg, int* w, int* h);

// A colour argument (border): black, white or #RRGGBB (hex digits). False, *rgb untouched,
// for anything else.
bool ParseColour(std::string_view text, std::vector<double>* rgb);

// The upright size the chain's lead operation (fit, fill, or resize below 1) gives an image of
// upright size `uw` x `uh`; false, nothing set, where fit or fill would not shrink it.
bool ShrinkSize(const ChainOp& lead, int uw, int uh, int* fw, int* fh);

// The chain written back in one canonical form (lower-case names, quotes only where needed,
// "jpg" as "jpeg"): equal chains give equal text, ParseChain(CanonicalChain(c)) gives c back.
// The key of convert's result cache.
std::string CanonicalChain(const Chain& chain);

}  // namespace lumen
