"""Video clips made from real photos with known shot boundaries, for the shot detector's tests and
benchmarks (tests/cli/test_video.py, bench/shots.sh).

Each shot is one photo seen through a slowly panning crop (real texture, real motion), so a cut
changes the picture and nothing else does. `make(photos, dest)` writes the clips and returns
{name: {"path", "cuts" (s), "fades" (s, the middle of each transition), "duration"}}. Needs the
ffmpeg tool (a test generator only; lumen links the libraries).

    /usr/bin/python3 tests/cli/video_corpus.py PHOTO_DIR DEST   # writes DEST/truth.json
"""
import json
import os
import subprocess
import sys

FPS = 25
W, H = 480, 272


def _ffmpeg(args):
    p = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y"] + args,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("ffmpeg " + " ".join(args) + "\n" + p.stderr.decode(errors="replace"))


def _shot_inputs(photos, frames, fps=FPS, size=None):
    """ffmpeg inputs and filter chains: photo i panned for frames[i] frames at `fps`."""
    W, H = size or (globals()["W"], globals()["H"])
    inputs, chains = [], []
    for i, n in enumerate(frames):
        inputs += ["-loop", "1", "-framerate", str(fps), "-t", f"{n / fps:.4f}", "-i", photos[i % len(photos)]]
        # Fill the frame, then pan a 90% crop across it over the shot.
        chains.append(
            f"[{i}:v]scale={int(W * 1.25)}:{int(H * 1.25)}:force_original_aspect_ratio=increase,"
            f"crop={int(W * 1.25)}:{int(H * 1.25)},"
            f"crop={W}:{H}:x='(iw-ow)*n/{max(1, n)}':y='(ih-oh)*n/{max(1, 2 * n)}',"
            f"setsar=1,format=yuv420p,trim=end_frame={n},setpts=PTS-STARTPTS[s{i}]")
    return inputs, chains


def _concat(photos, frames, out, codec_args, extra_chain="", fps=FPS, size=None):
    inputs, chains = _shot_inputs(photos, frames, fps, size)
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(len(frames)))
    graph += f"concat=n={len(frames)}:v=1[c]"
    graph += f";[c]{extra_chain}[v]" if extra_chain else ";[c]null[v]"
    _ffmpeg(inputs + ["-filter_complex", graph, "-map", "[v]"] + codec_args + [out])


def _cut_times(frames):
    t, cuts = 0, []
    for n in frames[:-1]:
        t += n
        cuts.append(t / FPS)
    return cuts


X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "50", "-pix_fmt", "yuv420p"]


def make(photos, dest):
    photos = sorted(photos)
    assert len(photos) >= 8, "need at least 8 photos"
    os.makedirs(dest, exist_ok=True)
    truth = {}
    # Hard cuts, shots of 0.8 to 3 s.
    frames = [50, 30, 75, 20, 40, 60, 25, 45, 35, 55]
    path = os.path.join(dest, "cuts.mp4")
    _concat(photos, frames, path, X264)
    truth["cuts"] = {"path": path, "cuts": _cut_times(frames), "fades": [], "duration": sum(frames) / FPS}
    # The same cuts in HEVC (hvc1, as phones write it), VP9 and AV1.
    for name, args in [("cuts-hevc.mp4", ["-c:v", "libx265", "-x265-params", "log-level=none",
                                           "-tag:v", "hvc1", "-pix_fmt", "yuv420p"]),
                       ("cuts-vp9.webm", ["-c:v", "libvpx-vp9", "-b:v", "1M", "-deadline", "realtime",
                                          "-cpu-used", "8"]),
                       ("cuts-av1.mkv", ["-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p"])]:
        p = os.path.join(dest, name)
        _ffmpeg(["-i", path] + args + [p])
        truth[name.split(".")[0]] = dict(truth["cuts"], path=p)
    # Flashes inside shots: one white frame, and two bright frames; neither is a cut.
    frames = [60, 70, 50]
    path = os.path.join(dest, "flash.mp4")
    flash = ("lutyuv=y=235:u=128:v=128:enable='eq(n,25)',"
             "lutyuv=y='min(255,val+120)':enable='between(n,95,96)'")
    _concat(photos[3:], frames, path, X264, flash)
    truth["flash"] = {"path": path, "cuts": _cut_times(frames), "fades": [], "duration": sum(frames) / FPS}
    # Fades through black (0.6 s out, 0.6 s in) and a 1 s dissolve.
    frames = [60, 60, 60, 60]
    inputs, chains = _shot_inputs(photos[1:], frames)
    d = 15 / FPS
    fades = []
    for i, n in enumerate(frames):
        parts = []
        if i in (1, 2):
            parts.append(f"fade=t=in:st=0:d={d}")
        if i in (0, 1):
            parts.append(f"fade=t=out:st={n / FPS - d}:d={d}")
        if parts:
            chains[i] = chains[i].replace(f"[s{i}]", "," + ",".join(parts) + f"[s{i}]")
    graph = ";".join(chains)
    # Shots 0-1-2 through black; 2 and 3 dissolve (xfade) over 1 s.
    graph += (";[s0][s1][s2]concat=n=3:v=1,settb=1/25,fps=25[a];[s3]settb=1/25,fps=25[b];"
              "[a][b]xfade=transition=fade:duration=1:offset=6.2[v]")
    path = os.path.join(dest, "fades.mp4")
    _ffmpeg(inputs + ["-filter_complex", graph, "-map", "[v]"] + X264 + [path])
    fades = [2.4, 4.8]  # the black between the shots
    truth["fades"] = {"path": path, "cuts": [], "fades": fades, "dissolves": [6.7], "duration": 8.6}
    # Interlaced: 50 fields/s woven into 25 frames/s with cuts between fields (the frame after the
    # cut has one field of each shot), stored as interlaced H.264 with top field first.
    frames = [51, 31, 75, 41, 61]
    path = os.path.join(dest, "interlaced.mkv")
    inputs, chains = _shot_inputs(photos[2:], frames, 2 * FPS)
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(len(frames)))
    graph += f"concat=n={len(frames)}:v=1,tinterlace=mode=interleave_top,setfield=tff[v]"
    _ffmpeg(inputs + ["-filter_complex", graph, "-map", "[v]",
                      "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264opts", "tff=1",
                      "-pix_fmt", "yuv420p", path])
    # Field f (input frame f at 50/s) lands in frame f // 2: a cut at an odd field starts mid-frame.
    fields, cuts = 0, []
    for n in frames[:-1]:
        fields += n
        cuts.append((fields // 2) / FPS)  # the first frame with any of the new shot
    truth["interlaced"] = {"path": path, "cuts": cuts, "fades": [], "duration": sum(frames) / 2 / FPS}
    # Variable frame rate: frame durations alternate 20 and 60 ms (as a phone in low light), so a
    # cut's time is not frame number / rate.
    frames = [40, 30, 50, 35]
    path = os.path.join(dest, "vfr.mp4")
    inputs, chains = _shot_inputs(photos[4:], frames)
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(len(frames)))
    graph += f"concat=n={len(frames)}:v=1,setpts='(N*0.04+if(mod(N,2),-0.02,0))/TB'[v]"
    _ffmpeg(inputs + ["-filter_complex", graph, "-map", "[v]", "-fps_mode", "passthrough",
                      "-video_track_timescale", "1000"] + X264 + [path])
    t, cuts = 0, []
    for n in frames[:-1]:
        t += n
        cuts.append(t * 0.04 + (-0.02 if t % 2 else 0))
    truth["vfr"] = {"path": path, "cuts": cuts, "fades": [], "duration": sum(frames) * 0.04}
    with open(os.path.join(dest, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    return truth


def phone_clip(photos, out, codec_args, size=(1920, 1080), fps=30, seconds=15, shots=5):
    """A phone-like clip for benchmarks: `shots` panning shots of real photos, `seconds` long."""
    n = int(seconds * fps)
    frames = [n // shots] * shots
    frames[-1] += n - sum(frames)
    _concat(sorted(photos), frames, out, codec_args, fps=fps, size=size)


def score(found, truth, tolerance):
    """(true positives, false positives, false negatives) of cut times within `tolerance`."""
    left = list(truth)
    tp = 0
    for t in found:
        near = [x for x in left if abs(x - t) <= tolerance + 1e-6]
        if near:
            left.remove(min(near, key=lambda x: abs(x - t)))
            tp += 1
    return tp, len(found) - tp, len(left)


if __name__ == "__main__":
    src, out = sys.argv[1], sys.argv[2]
    pics = [os.path.join(r, f) for r, _, fs in os.walk(src) for f in fs if f.lower().endswith(".jpg")]
    print(json.dumps(make(pics, out), indent=1))


def make_dupes(photos, dest, sources=4, seconds=8, size=(640, 360), codecs=("h264", "hevc", "av1")):
    """A duplicate-detection corpus: `sources` distinct clips (three shots each from photos no
    other source uses), each re-encoded at 3 sizes in each of `codecs`, trimmed by 2 s at the start
    and at the end, and remuxed into Matroska; and negatives: clips that share a 5 s intro with a
    source and then differ, and clips that start with a fade from black like every source does.
    Returns (paths, source of each path: an int, or None for a negative that matches nothing)."""
    photos = sorted(photos)
    assert len(photos) >= 3 * sources + 6, "not enough photos"
    os.makedirs(dest, exist_ok=True)
    enc = {"h264": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-pix_fmt", "yuv420p"],
           "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none",
                    "-pix_fmt", "yuv420p"],
           "av1": ["-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p"]}
    ext = {"h264": "mp4", "hevc": "mp4", "av1": "mkv"}
    out, src_of = [], []
    n = int(seconds * FPS)
    frames = [n // 3, n // 3, n - 2 * (n // 3)]
    for s in range(sources):
        base = os.path.join(dest, f"src{s}.mp4")
        # A fade from black into the first shot, as many phone and camera clips start.
        _concat(photos[3 * s:3 * s + 3], frames, base, X264 + ["-crf", "16"], "fade=t=in:st=0:d=1",
                size=size)
        out.append(base)
        src_of.append(s)
        for codec in codecs:
            for scale in (1.0, 0.75, 0.5):
                w, h = int(size[0] * scale) // 2 * 2, int(size[1] * scale) // 2 * 2
                p = os.path.join(dest, f"src{s}-{codec}-{w}.{ext[codec]}")
                _ffmpeg(["-i", base, "-vf", f"scale={w}:{h}", *enc[codec], "-an", p])
                out.append(p)
                src_of.append(s)
        for name, cut in (("head", ["-ss", "2.2"]), ("tail", ["-t", str(seconds - 1.8)])):
            p = os.path.join(dest, f"src{s}-trim-{name}.mp4")
            _ffmpeg(["-i", base, *cut, *enc["h264"], p])
            out.append(p)
            src_of.append(s)
        p = os.path.join(dest, f"src{s}-remux.mkv")
        _ffmpeg(["-i", base, "-c", "copy", p])
        out.append(p)
        src_of.append(s)
    # Negatives: the first 5 s of a source, then 5 s of photos no source uses; and a clip of its
    # own that also fades in from black.
    spare = photos[3 * sources:]
    for s in range(min(sources, 2)):
        tail = os.path.join(dest, f"tail{s}.mp4")
        _concat(spare[2 * s:2 * s + 2], [int(2.5 * FPS), int(2.5 * FPS)], tail, X264, size=size)
        p = os.path.join(dest, f"intro{s}.mp4")
        _ffmpeg(["-i", os.path.join(dest, f"src{s}.mp4"), "-i", tail, "-filter_complex",
                 f"[0:v]trim=end=5,setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[a][b]concat=n=2:v=1[v]",
                 "-map", "[v]", *X264, p])
        os.remove(tail)
        out.append(p)
        src_of.append(None)
    p = os.path.join(dest, "fade-only.mp4")
    _concat(spare[4:6], [n // 2, n - n // 2], p, X264, "fade=t=in:st=0:d=1", size=size)
    out.append(p)
    src_of.append(None)
    return out, src_of


def pair_scores(groups, paths, src_of):
    """(recall, precision) over pairs of files: a pair is true when both come from one source."""
    index = {p: i for i, p in enumerate(paths)}
    found = set()
    for g in groups:
        members = [index[f["path"]] for f in g["files"] if f["path"] in index]
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                found.add((min(members[i], members[j]), max(members[i], members[j])))
    truth = {(i, j) for i in range(len(paths)) for j in range(i + 1, len(paths))
             if src_of[i] is not None and src_of[i] == src_of[j]}
    tp = len(found & truth)
    return tp / max(1, len(truth)), tp / max(1, len(found)), found - truth
